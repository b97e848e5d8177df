/** Audit log entries in words: translated action names and details as "label: value" lines. */
import { i18n } from '@/i18n'
import { formatDuration } from '@/utils/format'

const te = (key: string) => i18n.global.te(key) || i18n.global.te(key, 'en')

/** "instance.install" → "Install app" (unknown actions stay as they are). */
export function auditAction(action: string): string {
  const key = `audit.actions.${action.replace(/\./g, '_')}`
  return te(key) ? i18n.global.t(key) : action
}

function value(key: string, raw: unknown, locale: string): string {
  const t = i18n.global.t
  if (typeof raw === 'boolean') return raw ? t('audit.yes') : t('audit.no')
  if (raw === null || raw === undefined) return '–'
  if (Array.isArray(raw)) return raw.length ? raw.map(String).join(', ') : '–'
  if (key === 'outcome' && te(`activity.states.${String(raw)}`)) return t(`activity.states.${String(raw)}`)
  if ((key === 'reason' || key === 'method' || key === 'next') && te(`audit.values.${String(raw).replace(/[ .]/g, '_')}`)) {
    return t(`audit.values.${String(raw).replace(/[ .]/g, '_')}`)
  }
  if (key === 'retry_after' && typeof raw === 'number') return formatDuration(raw, locale)
  if (typeof raw === 'object') {
    return Object.entries(raw as Record<string, unknown>).map(([k, v]) => `${k}=${typeof v === 'object' ? '…' : String(v)}`).join(', ')
  }
  return String(raw)
}

/** Details as one readable line: "Operation: 3f2a… · Outcome: Failed · Error: could not pull image". */
export function auditDetails(details: Record<string, unknown>, locale: string): string {
  const t = i18n.global.t
  return Object.entries(details)
    // the session id means nothing to a reader; the Result column says succeeded or failed already
    .filter(([key, raw]) => key !== 'session' && !(key === 'outcome' && (raw === 'succeeded' || raw === 'failed')))
    .map(([key, raw]) => {
      const label = te(`audit.fields.${key}`) ? t(`audit.fields.${key}`) : key
      const text = value(key, raw, locale)
      return `${label}: ${key === 'operation' || key === 'digest' ? text.slice(0, 12) : text}`
    })
    .join(' · ')
}
