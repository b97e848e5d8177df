import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import HistoryChart from '@/components/history-chart.vue'

const format = (v: number) => `${Math.round(v)}`

describe('history-chart', () => {
  it('draws the mean as a line and min..max as a band, breaking at gaps', () => {
    const chart = mount(HistoryChart, { props: {
      title: 'CPU', at: [0, 10, 20, 30, 40], format, fixedMax: 100,
      lines: [{ label: 'cpu', color: '#000', mean: [10, 20, null, 40, 50], min: [5, 10, null, 30, 40], max: [15, 30, null, 50, 60] }],
    } })
    const lines = chart.findAll('polyline')
    expect(lines).toHaveLength(2) // the gap at 20 splits the line in two
    expect(lines[0]!.attributes('points')).toBe('0.0,106.4 150.0,94.8')
    expect(chart.findAll('polygon')).toHaveLength(2)
    expect(chart.text()).toContain('50') // the last known value
    expect(chart.text()).toContain('100') // the fixed scale
  })
  it('says so when there is nothing to draw', () => {
    const chart = mount(HistoryChart, { props: {
      title: 'Memory', at: [], format, lines: [{ label: 'm', color: '#000', mean: [] }] },
    slots: { empty: 'nothing yet' } })
    expect(chart.findAll('polyline')).toHaveLength(0)
    expect(chart.text()).toContain('nothing yet')
    expect(chart.text()).toContain('–')
  })
})
