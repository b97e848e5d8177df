import { describe, expect, it } from 'vitest'
import en from '@/i18n/locales/en.json'
import zh from '@/i18n/locales/zh-CN.json'
import { detectLocale } from '@/i18n'

type Tree = { [key: string]: string | Tree }

function flatten(tree: Tree, prefix = ''): Map<string, string> {
  const out = new Map<string, string>()
  for (const [key, value] of Object.entries(tree)) {
    const path = prefix ? `${prefix}.${key}` : key
    if (typeof value === 'string') out.set(path, value)
    else for (const [k, v] of flatten(value, path)) out.set(k, v)
  }
  return out
}

const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort()

describe('locales', () => {
  const english = flatten(en as Tree)
  const chinese = flatten(zh as Tree)

  it('have identical key sets', () => {
    expect([...chinese.keys()].sort()).toEqual([...english.keys()].sort())
  })

  it('have no empty messages', () => {
    for (const [key, text] of [...english, ...chinese]) expect(text.trim(), key).not.toBe('')
  })

  it('use the same placeholders in both languages', () => {
    for (const [key, text] of english) expect(placeholders(chinese.get(key) ?? ''), key).toEqual(placeholders(text))
  })

  it('avoid vue-i18n special characters that would break messages', () => {
    for (const [key, text] of [...english, ...chinese]) {
      expect(text, key).not.toMatch(/[@|]/)
    }
  })

  it('translate the Chinese file for real', () => {
    const same = [...english].filter(([key, text]) => chinese.get(key) === text && /[a-z]{4,}/i.test(text.replace(/\{\w+\}/g, '')))
    // only proper names and file names may stay in English
    expect(same.map(([k]) => k).sort()).toEqual(['custom.composeLabel'])
  })
})

describe('detectLocale', () => {
  it('prefers a stored choice', () => {
    expect(detectLocale(['en-US'], 'zh-CN')).toBe('zh-CN')
  })
  it('follows the browser, Chinese variants included', () => {
    expect(detectLocale(['zh-TW', 'en'], null)).toBe('zh-CN')
    expect(detectLocale(['fr-FR', 'en-GB'], null)).toBe('en')
  })
  it('falls back to English', () => {
    expect(detectLocale(['de-DE'], 'xx')).toBe('en')
  })
})
