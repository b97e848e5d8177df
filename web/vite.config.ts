/// <reference types="vitest/config" />
import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The dev server proxies the API (and its websocket) to a local `stackhub serve`.
const backend = process.env.STACKHUB_DEV_BACKEND ?? 'http://127.0.0.1:18500'

export default defineConfig({
  plugins: [vue()],
  resolve: { alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) } },
  server: {
    proxy: { '/api': { target: backend, changeOrigin: false, ws: true } },
  },
  build: {
    target: 'es2022',
    chunkSizeWarningLimit: 600,
    rollupOptions: {
      output: {
        // libraries in their own long-cached chunks; each route is its own chunk
        manualChunks(id: string) {
          if (!id.includes('node_modules')) return undefined
          if (/markdown-it|dompurify|linkify|mdurl|uc\.micro|entities|punycode/.test(id)) return 'markdown'
          return undefined
        },
      },
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['tests/**/*.spec.ts'],
    server: { deps: { inline: ['naive-ui'] } },
  },
})
