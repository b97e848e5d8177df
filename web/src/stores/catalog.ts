/** Catalog apps, categories and stores, with the filters of the store page. */
import { defineStore } from 'pinia'
import { computed, reactive, ref, shallowRef } from 'vue'
import { api, call, type Schemas } from '@/api/client'
import { asApiError, type ApiError } from '@/api/errors'
import { i18n } from '@/i18n'

export type AppSummary = Schemas['CatalogAppSummary']
export type Category = Schemas['CategoryRead']
export type Store = Schemas['StoreRead']

export interface Filters {
  q: string
  category: string | null
  store: string | null
  installable: boolean | null
}

export const useCatalog = defineStore('catalog', () => {
  const apps = shallowRef<AppSummary[]>([])
  const icons = shallowRef(new Map<string, string>())
  const categories = shallowRef<Category[]>([])
  const stores = shallowRef<Store[]>([])
  const loading = ref(false)
  const error = shallowRef<ApiError | null>(null)
  const filters = reactive<Filters>({ q: '', category: null, store: null, installable: null })
  let generation = 0

  const locale = computed(() => String(i18n.global.locale.value))

  /** Fetch apps for the current filters; only the newest request's answer is kept. */
  async function search(): Promise<void> {
    const mine = ++generation
    loading.value = true
    try {
      const query: Record<string, string | boolean> = { locale: locale.value }
      if (filters.q.trim()) query.q = filters.q.trim()
      if (filters.category) query.category = filters.category
      if (filters.store) query.store = filters.store
      if (filters.installable !== null) query.installable = filters.installable
      const found = await call(api.GET('/api/catalog/apps', { params: { query } }))
      if (mine !== generation) return
      apps.value = found
      const known = new Map(icons.value)
      for (const app of found) if (app.icon_url) known.set(app.id, app.icon_url)
      icons.value = known
      error.value = null
    } catch (err) {
      if (mine === generation) error.value = asApiError(err)
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  async function loadFacets(): Promise<void> {
    const [cats, list] = await Promise.all([
      call(api.GET('/api/catalog/categories')).catch(() => [] as Category[]),
      call(api.GET('/api/stores')).catch(() => [] as Store[]),
    ])
    categories.value = cats
    stores.value = list
  }

  /** Icons of every app (for instances on the dashboard): one unfiltered listing. */
  async function loadIcons(): Promise<void> {
    if (icons.value.size) return
    try {
      const all = await call(api.GET('/api/catalog/apps', { params: { query: { locale: locale.value } } }))
      icons.value = new Map(all.filter((a) => a.icon_url).map((a) => [a.id, a.icon_url as string]))
    } catch {
      /* icons are decoration: letters stand in */
    }
  }

  /** The icon of an instance's app; `app` is the catalog name `store/app` (or a bare id). */
  function iconOf(store: string | null | undefined, app: string): string | null {
    const id = app.includes('/') ? app : store ? `${store}/${app}` : null
    return id ? icons.value.get(id) ?? null : null
  }

  function reset(): void {
    filters.q = ''
    filters.category = null
    filters.store = null
    filters.installable = null
  }

  return { apps, categories, stores, loading, error, filters, search, loadFacets, loadIcons, iconOf, reset }
})
