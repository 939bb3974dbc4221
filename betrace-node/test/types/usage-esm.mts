// The ES module entry's declarations (index.d.mts): named and default imports.
import betrace, { Engine, check, type Violation } from 'betrace'

const engine: Engine = new betrace.Engine([{ id: 'a', expression: 'never { x }' }])
const violations: Violation[] = engine.evaluate([]).concat(check('never { x }', []))
void violations
