// The Pothos schema builder and its plugins. Nothing else lives here (STYLE.md).
import SchemaBuilder from '@pothos/core';
import ErrorsPlugin from '@pothos/plugin-errors';
import ValidationPlugin from '@pothos/plugin-validation';
import type { GraphQLContext } from './context.js';
import { ValidationError } from './errors.js';

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: string; Output: string | Date };
    ByteCount: { Input: number; Output: number };
  };
}>({
  // Errors before validation, so validation failures become typed ValidationError results.
  plugins: [ErrorsPlugin, ValidationPlugin],
  defaultFieldNullability: false,
  errors: { unsafelyHandleInputErrors: true },
  validation: {
    validationError: (result) =>
      ValidationError.fromIssues(
        result.issues.map((i) => ({
          path: (i.path ?? []).map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.'),
          message: i.message,
        })),
      ),
  },
});
