/** Routes (each view its own chunk) and the sign-in guard. */
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { useAuth } from '@/stores/auth'
import { lazyView } from '@/utils/lazy'

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without signing in. */
    public?: boolean
    /** Only for admins. */
    admin?: boolean
    /** i18n key of the page title. */
    title?: string
    /** Shown without the app shell (sign-in pages). */
    bare?: boolean
  }
}

export const routes: RouteRecordRaw[] = [
  { path: '/setup', name: 'setup', component: lazyView(() => import('@/views/auth/setup-view.vue')),
    meta: { public: true, bare: true, title: 'setup.title' } },
  { path: '/login', name: 'login', component: lazyView(() => import('@/views/auth/login-view.vue')),
    meta: { public: true, bare: true, title: 'login.title' } },
  { path: '/', name: 'dashboard', component: lazyView(() => import('@/views/dashboard/dashboard-view.vue')),
    meta: { title: 'nav.dashboard' } },
  { path: '/store', name: 'store', component: lazyView(() => import('@/views/catalog/store-view.vue')),
    meta: { title: 'nav.store', admin: true } },
  { path: '/store/:store/:app', name: 'app', props: true,
    component: lazyView(() => import('@/views/catalog/app-view.vue')), meta: { title: 'nav.store', admin: true } },
  { path: '/apps', name: 'instances', component: lazyView(() => import('@/views/apps/instances-view.vue')),
    meta: { title: 'nav.apps' } },
  { path: '/apps/:name', name: 'instance', props: true,
    component: lazyView(() => import('@/views/apps/instance-view.vue')), meta: { title: 'nav.apps' } },
  { path: '/apps/:name/files', name: 'instance-files', props: true,
    component: lazyView(() => import('@/views/tools/files-view.vue')), meta: { title: 'files.open' } },
  { path: '/updates', name: 'updates', component: lazyView(() => import('@/views/apps/updates-view.vue')),
    meta: { title: 'nav.updates', admin: true } },
  { path: '/custom', name: 'custom', component: lazyView(() => import('@/views/apps/custom-install-view.vue')),
    meta: { title: 'nav.custom', admin: true } },
  { path: '/containers', name: 'containers',
    component: lazyView(() => import('@/views/system/containers-view.vue')),
    meta: { title: 'nav.containers', admin: true } },
  { path: '/health', name: 'health', component: lazyView(() => import('@/views/system/health-view.vue')),
    meta: { title: 'nav.health', admin: true } },
  { path: '/host-terminal', name: 'host-terminal',
    component: lazyView(() => import('@/views/tools/host-terminal-view.vue')),
    meta: { title: 'nav.hostTerminal', admin: true } },
  { path: '/backups', name: 'backups', component: lazyView(() => import('@/views/backups/backups-view.vue')),
    meta: { title: 'nav.backups', admin: true } },
  { path: '/activity', name: 'activity', component: lazyView(() => import('@/views/activity/activity-view.vue')),
    meta: { title: 'nav.activity', admin: true } },
  { path: '/settings/:tab?', name: 'settings', props: true,
    component: lazyView(() => import('@/views/settings/settings-view.vue')), meta: { title: 'nav.settings' } },
  { path: '/account', name: 'account', component: lazyView(() => import('@/views/auth/account-view.vue')),
    meta: { title: 'nav.account' } },
  { path: '/:pathMatch(.*)*', name: 'not-found',
    component: lazyView(() => import('@/views/not-found-view.vue')), meta: { title: 'notFound.title' } },
]

export const router = createRouter({
  history: createWebHistory(),
  routes,
  scrollBehavior: (_to, _from, saved) => saved ?? { top: 0 },
})

router.beforeEach(async (to) => {
  const auth = useAuth()
  try {
    await auth.ensureLoaded()
  } catch {
    // the server is unreachable: let the page render and show its own error
    return true
  }
  if (auth.setupRequired) return to.name === 'setup' ? true : { name: 'setup' }
  if (to.name === 'setup') return auth.authenticated ? { name: 'dashboard' } : { name: 'login' }
  if (!auth.authenticated) {
    if (to.meta.public) return true
    return { name: 'login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
  }
  if (to.name === 'login') return { name: 'dashboard' }
  if (auth.mustEnrol && to.name !== 'account') return { name: 'account', query: { enrol: '1' } }
  if (to.meta.admin && !auth.isAdmin) return { name: 'dashboard' }
  return true
})

// After an upgrade an open tab may ask for route chunks that no longer exist: load the page
// afresh instead of leaving the user on a dead click.
router.onError((err, to) => {
  const text = String((err as Error)?.message ?? err)
  if (/dynamically imported module|Importing a module script failed|Failed to fetch/i.test(text)) {
    window.location.assign(to.fullPath)
  }
})
