import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

// Pure cores (ipam/, the agent's render/ and each applier's render and plan) must not do I/O: time and randomness
// are parameters.
const ioModules = [
  'node:fs',
  'node:fs/promises',
  'node:child_process',
  'node:net',
  'node:http',
  'node:dgram',
  'kysely',
];
const ioPatterns = ['**/store/**', '**/store', 'fs', 'child_process', 'net'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'bin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: { ...globals.node } } },
  {
    rules: {
      '@typescript-eslint/no-empty-object-type': ['error', { allowInterfaces: 'with-single-extends' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: [
      'src/ipam/**/*.ts',
      'src/agent/render/**/*.ts',
      'src/agent/appliers/applier.ts',
      'src/agent/appliers/renderers.ts',
      'src/agent/appliers/*/render.ts',
      'src/agent/appliers/*/plan.ts',
    ],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ioModules.map((name) => ({ name, message: 'pure core: no I/O here (CONVENTIONS.md)' })),
          patterns: [{ group: ioPatterns, message: 'pure core: no I/O here (CONVENTIONS.md)' }],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'Date', message: 'pure core: time is a parameter' },
        { name: 'fetch', message: 'pure core: no I/O here' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'pure core: randomness is a parameter' },
      ],
    },
  },
);
