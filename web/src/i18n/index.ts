/** vue-i18n set-up: English bundled, Chinese loaded on demand; language from the browser. */
import { createI18n } from 'vue-i18n'
import en from './locales/en.json'

export const LOCALES = ['en', 'zh-CN'] as const
export type Locale = (typeof LOCALES)[number]
export type MessageSchema = typeof en

const STORAGE_KEY = 'stackhub.locale'

/** Pick the console language: a stored choice, else the browser's first supported one. */
export function detectLocale(languages: readonly string[], stored: string | null): Locale {
  if (stored && (LOCALES as readonly string[]).includes(stored)) return stored as Locale
  for (const lang of languages) {
    const lower = lang.toLowerCase()
    if (lower.startsWith('zh')) return 'zh-CN'
    if (lower.startsWith('en')) return 'en'
  }
  return 'en'
}

function storedLocale(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY)
  } catch {
    return null
  }
}

export const i18n = createI18n<[MessageSchema], Locale, false>({
  legacy: false,
  locale: 'en',
  fallbackLocale: 'en',
  messages: { en } as Record<Locale, MessageSchema>,
  missingWarn: false,
  fallbackWarn: false,
})

const loaders: Record<Locale, () => Promise<MessageSchema>> = {
  en: async () => en,
  'zh-CN': async () => (await import('./locales/zh-CN.json')).default as MessageSchema,
}

/** Switch the language (loading its messages first) and remember the choice. */
export async function setLocale(locale: Locale, remember = true): Promise<void> {
  if (!i18n.global.availableLocales.includes(locale)) {
    i18n.global.setLocaleMessage(locale, await loaders[locale]())
  }
  i18n.global.locale.value = locale
  document.documentElement.lang = locale
  if (remember) {
    try {
      localStorage.setItem(STORAGE_KEY, locale)
    } catch {
      /* private mode: not remembered */
    }
  }
}

/** Choose the starting language before the app mounts. */
export async function initLocale(): Promise<Locale> {
  const locale = detectLocale(navigator.languages ?? [navigator.language], storedLocale())
  try {
    await setLocale(locale, false)
    return locale
  } catch {
    // the language chunk did not load (a stale tab after an upgrade): English is bundled
    await setLocale('en', false)
    return 'en'
  }
}
