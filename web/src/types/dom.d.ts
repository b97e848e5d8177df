// Test hooks (data-test) on elements and on the inner inputs of components (input-props).
import '@vue/runtime-dom'

declare module '@vue/runtime-dom' {
  interface HTMLAttributes {
    'data-test'?: string
  }
}
