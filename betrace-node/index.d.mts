// Types of the ES module entry point (index.mjs): the declarations generated into index.d.ts.
export * from './index.js'
import * as betrace from './index.js'
export default betrace
