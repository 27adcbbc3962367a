#!/usr/bin/env node
/**
 * Builds a container image's runtime layout: `node containers/build.mjs <ingestor|worker> <outdir> [--arch arm64|x64]`.
 * The Dockerfiles' build stage runs exactly this, then copies <outdir> to /app; test/containers.build.test.ts
 * runs it too and starts the result, so what ships is what is tested without a Docker engine.
 *
 * <outdir>/dist/: each entry bundled by esbuild into one ESM file (every pure-JS dependency inside, the AWS SDK
 * included), with the health check (`node dist/healthcheck.mjs <component>`) next to it.
 * <outdir>/node_modules/: worker only, onnxruntime-node (a native addon esbuild cannot bundle) with the Linux
 * binary of --arch ONLY (25 MB arm64, 45 MB x64: never both), and onnxruntime-common.
 * Plain JavaScript: the build stage runs it with node alone.
 */
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'package.json'));

/** Entries per image: output name -> source. The trainer ships in the worker image (the training tasks run it). */
export const IMAGES = {
  ingestor: {
    entries: { ingestor: 'containers/ingestor/main.ts', healthcheck: 'containers/healthcheck.ts' },
    onnx: false,
  },
  worker: {
    entries: {
      worker: 'containers/worker/main.ts',
      train: 'models/train/main.ts',
      healthcheck: 'containers/healthcheck.ts',
    },
    onnx: true,
  },
};

/** Docker's TARGETARCH -> onnxruntime-node's folder name. */
export const ARCH = { arm64: 'arm64', amd64: 'x64', x64: 'x64' };

const BANNER =
  "import { createRequire as __qwCreateRequire } from 'node:module'; const require = __qwCreateRequire(import.meta.url);";

/** Node's own lookup path, not require.resolve(): onnxruntime-common's "exports" hides its package.json. */
function packageDir(name) {
  const dir = (require.resolve.paths(name) ?? [])
    .map((base) => path.join(base, name))
    .find((d) => existsSync(path.join(d, 'package.json')));
  if (!dir) throw new Error(`${name} is not installed (run npm ci)`);
  return dir;
}

export async function buildImage(image, outdir, arch) {
  const spec = IMAGES[image];
  if (!spec) throw new Error(`unknown image "${image}" (expected ${Object.keys(IMAGES).join(' or ')})`);
  const ortArch = ARCH[arch];
  if (!ortArch) throw new Error(`unknown --arch "${arch}" (expected arm64, amd64 or x64)`);
  const { build } = await import(require.resolve('esbuild'));
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(path.join(outdir, 'dist'), { recursive: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(Object.entries(spec.entries).map(([name, file]) => [name, file])),
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    sourcemap: true,
    // Error classes are named after their class (src/errors.ts): a renamed class would lose its name.
    keepNames: true,
    outdir: path.join(outdir, 'dist'),
    outExtension: { '.js': '.mjs' },
    external: spec.onnx ? ['onnxruntime-node'] : [],
    banner: { js: BANNER },
    logLevel: 'warning',
  });
  if (spec.onnx) {
    const ort = packageDir('onnxruntime-node');
    const binary = path.join(ort, 'bin/napi-v6/linux', ortArch);
    if (!existsSync(binary)) throw new Error(`onnxruntime-node has no linux/${ortArch} binary at ${binary}`);
    const dest = path.join(outdir, 'node_modules/onnxruntime-node');
    mkdirSync(path.join(dest, 'bin/napi-v6/linux'), { recursive: true });
    cpSync(path.join(ort, 'package.json'), path.join(dest, 'package.json'));
    cpSync(path.join(ort, 'dist'), path.join(dest, 'dist'), { recursive: true });
    cpSync(binary, path.join(dest, 'bin/napi-v6/linux', ortArch), { recursive: true });
    cpSync(packageDir('onnxruntime-common'), path.join(outdir, 'node_modules/onnxruntime-common'), {
      recursive: true,
    });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [image, outdir, ...rest] = process.argv.slice(2);
  const archFlag = rest.indexOf('--arch');
  const arch = archFlag >= 0 ? rest[archFlag + 1] : process.arch;
  if (!image || !outdir) {
    console.error('usage: node containers/build.mjs <ingestor|worker> <outdir> [--arch arm64|amd64|x64]');
    process.exit(2);
  }
  try {
    await buildImage(image, path.resolve(outdir), arch);
    console.log(`built ${image} (${ARCH[arch]}) into ${outdir}`);
  } catch (err) {
    console.error(`build failed: ${err.message}`);
    process.exit(1);
  }
}
