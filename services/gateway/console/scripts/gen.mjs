// Generates the TypeScript message and service types (src/gen/) from the repository's protos with protoc-gen-es,
// run by the protoc that Python's grpc_tools ships: no buf or protoc download is needed.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const consoleDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const protosDir = resolve(consoleDir, "../../../protos");
const outDir = join(consoleDir, "src/gen");
const python = process.env.PYTHON || resolve(consoleDir, "../../../.venv/bin/python");
const plugin = join(consoleDir, "node_modules/.bin/protoc-gen-es");

function protoFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return protoFiles(path);
    return entry.name.endsWith(".proto") ? [relative(protosDir, path)] : [];
  });
}

// The well-known types (timestamp, struct) that the protos import come with grpc_tools.
const wellKnownInclude = execFileSync(
  python,
  ["-c", "import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))"],
  { encoding: "utf8" },
).trim();

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const files = protoFiles(protosDir).sort();
execFileSync(
  python,
  [
    "-m",
    "grpc_tools.protoc",
    `-I${protosDir}`,
    `-I${wellKnownInclude}`,
    `--plugin=protoc-gen-es=${plugin}`,
    `--es_out=${outDir}`,
    "--es_opt=target=ts",
    ...files,
  ],
  { cwd: protosDir, stdio: "inherit" },
);
console.log(`generated ${files.length} proto files into ${relative(consoleDir, outDir)}/`);
