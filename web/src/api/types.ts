/** Named API types used across views (all generated from the OpenAPI schema). */
import type { components } from './schema'

type S = components['schemas']
export type Role = S['Role']
export type UserBrief = S['UserBrief']
export type UserRead = S['UserRead']
export type AuthStatus = S['StatusRead']
export type LoginResult = S['LoginResult']
export type SessionRead = S['SessionRead']
export type TotpEnrolment = S['TotpEnrolment']
export type TokenRead = S['TokenRead']
export type TokenCreated = S['TokenCreated']
export type SecuritySettings = S['SecuritySettings']
export type AuditEntry = S['AuditEntry']
