/** Load data with loading and error state, for views. */
import { ref, shallowRef, type Ref, type ShallowRef } from 'vue'
import { asApiError, type ApiError } from '@/api/errors'

export interface AsyncState<T> {
  data: ShallowRef<T | null>
  loading: Ref<boolean>
  error: ShallowRef<ApiError | null>
  run: () => Promise<T | null>
}

/** Wrap a loader: `run()` sets loading, keeps the last data, and captures the error. */
export function useAsync<T>(loader: () => Promise<T>): AsyncState<T> {
  const data = shallowRef<T | null>(null)
  const loading = ref(false)
  const error = shallowRef<ApiError | null>(null)
  let generation = 0
  async function run(): Promise<T | null> {
    const mine = ++generation
    loading.value = true
    try {
      const value = await loader()
      if (mine === generation) {
        data.value = value
        error.value = null
      }
      return value
    } catch (err) {
      if (mine === generation) error.value = asApiError(err)
      return null
    } finally {
      if (mine === generation) loading.value = false
    }
  }
  return { data, loading, error, run }
}
