import { describe, expect, it } from 'vitest'
import { formatAgo, formatBytes, formatPercent, formatRate } from '@/utils/format'

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
})
