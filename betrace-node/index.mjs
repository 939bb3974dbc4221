// ES module entry point of `betrace`: the same native binding as the CommonJS entry (index.js).
import { createRequire } from 'node:module'

const binding = createRequire(import.meta.url)('./index.js')

export const { Engine, check, validate, format } = binding
export default binding
