import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import shape from './scripts/eslint-shape.mjs';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test/.scratch/**', 'out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { shape },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
      // The shape of the house (scripts/eslint-shape.mjs): folder boundaries and entries, no cycles.
      'shape/boundaries': 'error',
      'shape/no-cycle': 'error',
      // Small files, named for what they hold (C sources are not linted here).
      'max-lines': ['error', { max: 400 }],
    },
  },
);
