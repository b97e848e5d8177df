import { describe, expect, it } from 'vitest'
import { formatAgo, formatBytes, formatDuration, formatPercent, formatRate } from '@/utils/format'

describe('formatters', () => {
  it('formats sizes and rates', () => {
    expect(formatBytes(0)).toBe('0 B')
    expect(formatBytes(1536)).toBe('1.5 KB')
    expect(formatBytes(250 * 1024 * 1024)).toBe('250 MB')
    expect(formatBytes(undefined)).toBe('–')
    expect(formatRate(2048)).toBe('2.0 KB/s')
  })
  it('formats percentages', () => {
    expect(formatPercent(7.25)).toBe('7.3%')
    expect(formatPercent(93.4)).toBe('93%')
    expect(formatPercent(Number.NaN)).toBe('–')
  })
  it('says how long ago in the chosen language', () => {
    const now = Date.parse('2026-01-01T12:00:00Z')
    expect(formatAgo('2026-01-01T11:57:00Z', 'en', now)).toBe('3 minutes ago')
    expect(formatAgo('2026-01-01T11:57:00Z', 'zh-CN', now)).toBe('3分钟前')
  })
  it('formats durations compactly in the chosen language', () => {
    expect(formatDuration(0.1234, 'en')).toBe('123ms')
    expect(formatDuration(3.25, 'en')).toBe('3.3s')
    expect(formatDuration(42.4, 'en')).toBe('42s')
    expect(formatDuration(65, 'en')).toBe('1m 5s')
    expect(formatDuration(120, 'en')).toBe('2m')
    expect(formatDuration(59.7, 'en')).toBe('1m')
    expect(formatDuration(3599, 'en')).toBe('1h')
    expect(formatDuration(2 * 3600 + 4 * 60 + 10, 'en')).toBe('2h 4m')
    expect(formatDuration(65, 'zh-CN')).toBe('1分钟5秒')
    expect(formatDuration(null)).toBe('–')
    expect(formatDuration(-1, 'en')).toBe('0ms')
  })
})
