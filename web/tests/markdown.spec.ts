import { describe, expect, it } from 'vitest'
import { renderMarkdown } from '@/utils/markdown'

describe('renderMarkdown', () => {
  it('renders markdown', () => {
    expect(renderMarkdown('# Title\n\n**bold**')).toContain('<strong>bold</strong>')
  })
  it('never lets store HTML through as elements', () => {
    const html = renderMarkdown('<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>')
    const box = document.createElement('div')
    box.innerHTML = html
    expect(box.querySelector('script, img')).toBeNull()
    expect(box.textContent).toContain('<script>')
  })
  it('drops javascript: links and opens links in a new tab', () => {
    const box = document.createElement('div')
    box.innerHTML = renderMarkdown('[x](javascript:alert(1)) [site](https://example.com)')
    const links = box.querySelectorAll('a')
    expect([...links].map((a) => a.getAttribute('href'))).toEqual(['https://example.com'])
    expect(links[0]!.getAttribute('target')).toBe('_blank')
    expect(links[0]!.getAttribute('rel')).toContain('noopener')
  })
})
