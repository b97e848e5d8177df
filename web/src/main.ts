import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { i18n, initLocale } from './i18n'
import { router } from './router'
import './styles.css'

async function start(): Promise<void> {
  await initLocale()
  const app = createApp(App)
  app.use(createPinia())
  app.use(i18n)
  app.use(router)
  app.mount('#app')
}

void start()
