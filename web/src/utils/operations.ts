/** Operations (the journal of long jobs): states, kinds and step timings for the console. */
import type { Schemas } from '@/api/client'

export type Operation = Schemas['OperationRead']
export type OperationState = Schemas['OperationState']

export const OPERATION_STATES: readonly OperationState[] = ['running', 'succeeded', 'failed', 'interrupted']
/** The kinds the server runs today; newer ones are shown by their raw name until translated. */
export const OPERATION_KINDS = ['install', 'remove', 'start', 'stop', 'restart'] as const

export type TagType = 'default' | 'info' | 'success' | 'warning' | 'error'

/** The colour of an operation's state tag. */
export function stateTag(state: string): TagType {
  switch (state) {
    case 'running': return 'info'
    case 'succeeded': return 'success'
    case 'failed': return 'error'
    case 'interrupted': return 'warning'
    default: return 'default'
  }
}

/** One step placed on the operation's timeline (seconds, and fractions of the whole). */
export interface StepTiming {
  name: string
  startedAt: string
  /** Seconds from the operation's start to the step's. */
  offset: number
  /** Seconds the step took, or has taken so far while it runs. */
  duration: number
  /** The step still runs. */
  running: boolean
  /** The step the operation failed or stopped in. */
  ended: 'failed' | 'interrupted' | null
  /** Where the step's bar begins and how wide it is, as fractions of the timeline (0..1). */
  left: number
  width: number
}

export interface Timeline {
  /** Seconds the operation took, or has taken so far. */
  total: number
  steps: StepTiming[]
}

function ms(value: string | null | undefined): number | null {
  if (!value) return null
  const t = Date.parse(value)
  return Number.isNaN(t) ? null : t
}

/** Seconds an operation took, or has taken so far while it runs. */
export function elapsed(op: Operation, now: number = Date.now()): number | null {
  if (op.duration !== null && op.duration !== undefined) return op.duration
  const start = ms(op.started_at)
  if (start === null) return null
  const end = ms(op.finished_at) ?? (op.state === 'running' ? now : null)
  return end === null ? null : Math.max(0, (end - start) / 1000)
}

/** Lay an operation's steps out on one timeline, the running step growing with `now`. */
export function timeline(op: Operation, now: number = Date.now()): Timeline {
  const start = ms(op.started_at) ?? now
  const end = ms(op.finished_at) ?? now
  const steps = op.steps ?? []
  const placed = steps.map((step, i) => {
    const begin = ms(step.started_at) ?? start
    const offset = Math.max(0, (begin - start) / 1000)
    const open = step.duration === null || step.duration === undefined
    const duration = open ? Math.max(0, (end - begin) / 1000) : (step.duration as number)
    const last = i === steps.length - 1
    return {
      name: step.name, startedAt: step.started_at, offset, duration,
      running: open && op.state === 'running',
      ended: last && (op.state === 'failed' || op.state === 'interrupted') ? op.state : null,
    }
  })
  const total = Math.max(elapsed(op, now) ?? 0, ...placed.map((s) => s.offset + s.duration))
  const scale = total > 0 ? total : 1
  return {
    total,
    steps: placed.map((s) => ({ ...s, left: Math.min(1, s.offset / scale), width: Math.min(1, s.duration / scale) })),
  }
}

/** The first line of an error, for one-line summaries (the details show it in full). */
export function firstLine(text: string | null | undefined): string {
  return (text ?? '').split('\n', 1)[0]!.trim()
}

/** Step colours, one per step in order (no red or orange: those mark where an operation ended). */
const STEP_COLORS = ['#2080f0', '#36ad6a', '#8a63d2', '#1fa2b8', '#6c8ebf', '#5fb878', '#a37fd8', '#3aa0a0']

/** The colour of a step's bar: its place in the operation, or red/orange where it failed/stopped. */
export function stepColor(index: number, ended: StepTiming['ended'] = null): string {
  if (ended === 'failed') return '#d03050'
  if (ended === 'interrupted') return '#f0a020'
  return STEP_COLORS[index % STEP_COLORS.length]!
}
