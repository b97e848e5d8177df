/** Console preferences: theme and language, remembered in the browser. */
import { defineStore } from 'pinia'
import { computed, ref, watch } from 'vue'
import { i18n, setLocale, type Locale } from '@/i18n'

export type ThemeChoice = 'auto' | 'light' | 'dark'
const THEME_KEY = 'stackhub.theme'

function storedTheme(): ThemeChoice {
  try {
    const value = localStorage.getItem(THEME_KEY)
    return value === 'light' || value === 'dark' ? value : 'auto'
  } catch {
    return 'auto'
  }
}

export const usePrefs = defineStore('prefs', () => {
  const theme = ref<ThemeChoice>(storedTheme())
  const systemDark = ref(typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches)
  if (typeof matchMedia === 'function') {
    matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', (e) => {
      systemDark.value = e.matches
    })
  }
  const dark = computed(() => theme.value === 'dark' || (theme.value === 'auto' && systemDark.value))
  const locale = computed<Locale>(() => i18n.global.locale.value as Locale)

  watch(theme, (value) => {
    try {
      localStorage.setItem(THEME_KEY, value)
    } catch {
      /* not remembered */
    }
  })
  watch(dark, (value) => {
    document.documentElement.dataset.theme = value ? 'dark' : 'light'
  }, { immediate: true })

  async function changeLocale(value: Locale): Promise<void> {
    await setLocale(value)
  }

  return { theme, dark, locale, changeLocale }
})
