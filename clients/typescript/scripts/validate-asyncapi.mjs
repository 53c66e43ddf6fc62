// Validates an AsyncAPI document with the official parser; any diagnostic of severity
// error or warning fails (hints and information are printed only).
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const path = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"));
const failing = diagnostics.filter(
  (d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning,
);
for (const d of diagnostics) {
  console.log(`${DiagnosticSeverity[d.severity]} ${d.code} at ${d.path.join("/")}: ${d.message}`);
}
if (!document || failing.length > 0) {
  console.error(`${path}: ${failing.length} errors or warnings`);
  process.exit(1);
}
console.log(
  `${path}: valid AsyncAPI ${document.version()}, ${document.allMessages().length} messages, ${document.allOperations().length} operations`,
);
