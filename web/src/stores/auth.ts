/** Who is signed in: setup state, sign-in steps (password, TOTP), sign-out. */
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, ApiError, call } from '@/api/client'
import type { AuthStatus } from '@/api/types'
import { live } from '@/api/ws'

export const useAuth = defineStore('auth', () => {
  const status = ref<AuthStatus | null>(null)
  const loaded = ref(false)

  const user = computed(() => (status.value?.authenticated ? status.value.user ?? null : null))
  const authenticated = computed(() => Boolean(status.value?.authenticated))
  const isAdmin = computed(() => user.value?.role === 'admin')
  const setupRequired = computed(() => Boolean(status.value?.setup_required))
  /** An admin requires 2FA and this user has not enrolled yet. */
  const mustEnrol = computed(() => Boolean(status.value?.require_2fa) && user.value !== null
    && !user.value.totp_enabled)

  /** Ask the server who we are (and whether it needs setting up). */
  async function refresh(): Promise<void> {
    try {
      status.value = await call(api.GET('/api/auth/status'))
    } finally {
      loaded.value = true
    }
  }

  async function ensureLoaded(): Promise<void> {
    if (!loaded.value) await refresh()
  }

  async function setup(setupToken: string, username: string, password: string): Promise<void> {
    await call(api.POST('/api/auth/setup', {
      body: { setup_token: setupToken.trim(), username: username.trim(), password } }))
    await refresh()
  }

  /** First sign-in step; returns true when a TOTP code is needed next. */
  async function login(username: string, password: string): Promise<boolean> {
    live.reset()
    const result = await call(api.POST('/api/auth/login', { body: { username: username.trim(), password } }))
    if (result.totp_required) return true
    await refresh()
    return false
  }

  async function verifyTotp(code: string): Promise<void> {
    await call(api.POST('/api/auth/totp', { body: { code: code.replace(/\s+/g, '') } }))
    await refresh()
  }

  async function logout(): Promise<void> {
    try {
      // ending a session twice is harmless: ask again when the request got no answer at all
      // (a network blip), so the session really ends on the server
      for (let attempt = 0; ; attempt++) {
        try {
          await call(api.POST('/api/auth/logout'))
          break
        } catch (err) {
          if (attempt >= 3 || !(err instanceof ApiError && err.code === 'network')) throw err
          await new Promise((resolve) => setTimeout(resolve, 400 * (attempt + 1)))
        }
      }
    } finally {
      live.reset()
      status.value = status.value ? { ...status.value, authenticated: false, user: null } : null
    }
  }

  /** The session ended elsewhere (a 401): forget the user without asking the server. */
  function signedOut(): void {
    if (status.value) status.value = { ...status.value, authenticated: false, user: null }
    live.reset()
  }

  function markTotpEnabled(): void {
    const current = status.value?.user
    if (status.value && current) status.value = { ...status.value, user: { ...current, totp_enabled: true } }
  }

  return { status, loaded, user, authenticated, isAdmin, setupRequired, mustEnrol, refresh,
    ensureLoaded, setup, login, verifyTotp, logout, signedOut, markTotpEnabled }
})
