// TypeDoc: the API reference from the public docstrings (`npm run docs`, out:
// docs/api, git-ignored). Its entry points are the package's `exports`, each
// `dist/lib/X.d.ts` read from `lib/X.ts`, so a subpath added to package.json
// (`./compat`...) is documented, and validated, with no change here. A public
// export without a docstring, or a {@link} to nothing, fails the run
// (test/docs/typedoc.test.ts runs it in `npm test`).
import { readFileSync } from 'node:fs'

const manifest = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'))

/** `lib/X.ts` for each `exports` entry with types: `./dist/lib/X.d.ts`. */
const entryPoints = Object.values(manifest.exports)
  .map((entry) => typeof entry === 'object' ? entry.types : undefined)
  .filter((types) => typeof types === 'string')
  .map((types) => types.replace(/^\.\/dist\//, '').replace(/\.d\.ts$/, '.ts'))

/** @type {Partial<import('typedoc').TypeDocOptions>} */
export default {
  entryPoints,
  tsconfig: 'tsconfig.build.json',
  out: 'docs/api',
  name: manifest.name,
  readme: 'none',
  excludePrivate: true,
  excludeInternal: true,
  excludeExternals: true,
  // Types a public signature names that the package does not export: shown by name.
  intentionallyNotExported: ['ReadyState', 'PerMessageDeflateOptions', 'MessageListener'],
  validation: {
    notExported: true,
    invalidLink: true,
    rewrittenLink: true,
    notDocumented: true,
    unusedMergeModuleWith: true
  },
  treatWarningsAsErrors: true,
  treatValidationWarningsAsErrors: true
}
