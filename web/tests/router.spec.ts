import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { router } from '@/router'
import { useAuth } from '@/stores/auth'
import type { AuthStatus } from '@/api/types'

function signedIn(status: Partial<AuthStatus>) {
  const auth = useAuth()
  auth.status = { setup_required: false, authenticated: false, user: null, require_2fa: false, ...status }
  auth.loaded = true
}

const admin = { name: 'owner', role: 'admin' as const, totp_enabled: true }
const member = { name: 'mia', role: 'member' as const, totp_enabled: false }

describe('route guard', () => {
  beforeEach(async () => {
    setActivePinia(createPinia())
    await router.replace('/setup').catch(() => {})
  })

  it('sends everyone to setup until an admin exists', async () => {
    signedIn({ setup_required: true })
    await router.push('/apps')
    expect(router.currentRoute.value.name).toBe('setup')
  })

  it('asks for sign-in and comes back afterwards', async () => {
    signedIn({})
    await router.push('/apps/blog')
    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.next).toBe('/apps/blog')
  })

  it('keeps members out of admin pages', async () => {
    signedIn({ authenticated: true, user: member })
    await router.push('/containers')
    expect(router.currentRoute.value.name).toBe('dashboard')
    await router.push('/store')
    expect(router.currentRoute.value.name).toBe('dashboard')
    await router.push('/activity')
    expect(router.currentRoute.value.name).toBe('dashboard')
    await router.push('/apps')
    expect(router.currentRoute.value.name).toBe('instances')
  })

  it('lets admins in and sends them away from sign-in', async () => {
    signedIn({ authenticated: true, user: admin })
    await router.push('/containers')
    expect(router.currentRoute.value.name).toBe('containers')
    await router.push('/activity?state=failed')
    expect(router.currentRoute.value.name).toBe('activity')
    await router.push('/login')
    expect(router.currentRoute.value.name).toBe('dashboard')
  })

  it('makes users enrol a second factor when an admin requires it', async () => {
    signedIn({ authenticated: true, user: member, require_2fa: true })
    await router.push('/apps')
    expect(router.currentRoute.value.name).toBe('account')
    expect(router.currentRoute.value.query.enrol).toBe('1')
  })
})
