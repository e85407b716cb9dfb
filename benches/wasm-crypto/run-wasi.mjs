// Runs one wasm32-wasip1 command under node's WASI (V8, as in Envoy's wasm runtime) and
// reports the JS-side wall time of the whole run on stderr, to cross-check the WASI clocks.
// Usage: node run-wasi.mjs FILE.wasm [args...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
// A module linking the filter (tollgate_verifiers) also imports the proxy-wasm host functions of
// the filter's exports; none is called by the benchmark, so each one only throws.
const imports = wasi.getImportObject();
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module !== 'wasi_snapshot_preview1' && imp.kind === 'function') {
    imports[imp.module] ??= {};
    imports[imp.module][imp.name] = () => { throw new Error(`unexpected host call ${imp.name}`); };
  }
}
const instance = await WebAssembly.instantiate(module, imports);
const start = process.hrtime.bigint();
// The filter's reactor export `_initialize` is not this command's: hide it from WASI's start().
const { _initialize, ...exports } = instance.exports;
const code = wasi.start({ exports });
const ms = Number(process.hrtime.bigint() - start) / 1e6;
process.stderr.write(`js-side: ${file} ran ${ms.toFixed(0)} ms, exit ${code}\n`);
process.exitCode = code;
