/** Whether the host terminal is enabled on this server (asked once, by admins only). */
import { ref } from 'vue'
import { api, call } from '@/api/client'

export const hostTerminalEnabled = ref(false)
let asked = false

export async function loadHostTerminal(): Promise<boolean> {
  if (asked) return hostTerminalEnabled.value
  asked = true
  try {
    hostTerminalEnabled.value = (await call(api.GET('/api/host/terminal'))).enabled
  } catch {
    asked = false
    hostTerminalEnabled.value = false
  }
  return hostTerminalEnabled.value
}
