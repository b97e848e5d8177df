/** Small formatters for sizes, rates and times, locale-aware where it matters. */

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB']

/** Format a byte count with binary multiples, e.g. 1536 -> "1.5 KB". */
export function formatBytes(bytes: number | null | undefined, digits = 1): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '–'
  let value = Math.max(0, bytes)
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  const shown = unit === 0 ? Math.round(value).toString() : value.toFixed(value >= 100 ? 0 : digits)
  return `${shown} ${UNITS[unit]}`
}

/** Format a throughput in bytes per second. */
export function formatRate(bytesPerSecond: number | null | undefined): string {
  return `${formatBytes(bytesPerSecond)}/s`
}

/** Format a percentage with one decimal at most. */
export function formatPercent(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–'
  return `${value >= 10 ? Math.round(value) : Math.round(value * 10) / 10}%`
}

/** Format a timestamp (ISO string or Unix seconds) as a local date and time. */
export function formatTime(value: string | number | null | undefined, locale?: string): string {
  if (value === null || value === undefined || value === '') return '–'
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value)
  if (Number.isNaN(date.getTime())) return String(value)
  return date.toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short' })
}

/** Say how long ago a time was, e.g. "3 minutes ago", in the given locale. */
export function formatAgo(value: string | number | null | undefined, locale?: string,
  now: number = Date.now()): string {
  if (value === null || value === undefined || value === '') return '–'
  const when = typeof value === 'number' ? value * 1000 : new Date(value).getTime()
  if (Number.isNaN(when)) return String(value)
  const seconds = Math.round((when - now) / 1000)
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' })
  const steps: [Intl.RelativeTimeFormatUnit, number][] = [
    ['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400], ['hour', 3600],
    ['minute', 60],
  ]
  for (const [unit, size] of steps) {
    if (Math.abs(seconds) >= size) return rtf.format(Math.round(seconds / size), unit)
  }
  return rtf.format(seconds, 'second')
}

/** Format a duration in seconds compactly in the given locale: "120ms", "3.2s", "1m 5s", "2h 4m". */
export function formatDuration(seconds: number | null | undefined, locale?: string): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–'
  const unit = (name: string, value: number, digits = 0) => new Intl.NumberFormat(locale,
    { style: 'unit', unit: name, unitDisplay: 'narrow', maximumFractionDigits: digits }).format(value)
  const both = (a: string, b: string) => new Intl.ListFormat(locale, { type: 'unit', style: 'narrow' }).format([a, b])
  const s = Math.max(0, seconds)
  if (s < 1) return unit('millisecond', Math.round(s * 1000))
  if (s < 10) return unit('second', s, 1)
  if (s < 59.5) return unit('second', Math.round(s))
  if (s < 3570) {
    const total = Math.round(s)
    const rest = total % 60
    return rest ? both(unit('minute', Math.floor(total / 60)), unit('second', rest)) : unit('minute', total / 60)
  }
  const minutes = Math.round(s / 60)
  const rest = minutes % 60
  return rest ? both(unit('hour', Math.floor(minutes / 60)), unit('minute', rest)) : unit('hour', minutes / 60)
}
