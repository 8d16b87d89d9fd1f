// Validates AsyncAPI documents with @asyncapi/parser; prints every diagnostic and exits 1 on
// any error or warning (tests/test_lint_specs.py runs it). Usage: node validate-asyncapi.mjs FILE...
import { Parser, fromFile } from '@asyncapi/parser';

const SEVERITY = ['error', 'warning', 'info', 'hint'];
const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await fromFile(parser, file).parse();
  for (const d of diagnostics) {
    const where = `${d.range.start.line + 1}:${d.range.start.character + 1}`;
    const sev = SEVERITY[d.severity] ?? d.severity;
    console.log(`${file}:${where} ${sev} ${d.code} ${d.message} (${d.path.join('.')})`);
    if (d.severity <= 1) failed = true;
  }
  if (!document) failed = true;
  console.log(`${file}: ${diagnostics.length} diagnostics`);
}
process.exit(failed ? 1 : 0);
