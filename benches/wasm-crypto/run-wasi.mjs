// Runs one wasm32-wasip1 command under node's WASI (V8, as in Envoy's wasm runtime) and
// reports the JS-side wall time of the whole run on stderr, to cross-check the WASI clocks.
// Usage: node run-wasi.mjs FILE.wasm [args...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
const start = process.hrtime.bigint();
const code = wasi.start(instance);
const ms = Number(process.hrtime.bigint() - start) / 1e6;
process.stderr.write(`js-side: ${file} ran ${ms.toFixed(0)} ms, exit ${code}\n`);
process.exitCode = code;
