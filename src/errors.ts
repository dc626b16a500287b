// Expected failures of the domain. Each maps to a GraphQL type implementing the Error
// interface (src/schema/errors.ts); anything else thrown is unexpected and masked.

export interface Issue {
  /** Dotted path of the offending value, e.g. `input.config.credentials.s3.secretAccessKey`. */
  path: string;
  message: string;
}

export abstract class WildError extends Error {
  abstract readonly code: string;
}

export class NotFoundError extends WildError {
  readonly code = 'NOT_FOUND';
  override name = 'NotFoundError';
}

export class ValidationError extends WildError {
  readonly code: string = 'VALIDATION_FAILED';
  override name = 'ValidationError';
  constructor(message: string, readonly issues: Issue[] = [{ path: '', message }]) {
    super(message);
  }

  static fromIssues(issues: Issue[], prefix = 'invalid input'): ValidationError {
    const summary = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
    return new ValidationError(`${prefix}: ${summary}`, issues);
  }
}

export class ConflictError extends WildError {
  readonly code = 'CONFLICT';
  override name = 'ConflictError';
}

export class RepositoryError extends WildError {
  override name = 'RepositoryError';
  constructor(message: string, readonly code: string = 'REPOSITORY_ERROR') {
    super(message);
  }
}

export class ForbiddenError extends WildError {
  readonly code = 'FORBIDDEN';
  override name = 'ForbiddenError';
  constructor(message = 'this token may read but not change anything') {
    super(message);
  }
}

/** An issue's path for a problem found in a file of the data directory (`path`: where in it, if known). */
export function fileIssuePath(file: string, path: string): string {
  return path ? `${file} (${path})` : file;
}

/**
 * A problem with one file of the data directory: names the file and the path inside it. A mutation
 * that cannot go on because of it answers a ValidationError (code CONFIG_INVALID) whose issues name
 * the file, not the input.
 */
export class ConfigFileError extends ValidationError {
  override readonly code = 'CONFIG_INVALID';
  override name = 'ConfigFileError';
  constructor(readonly file: string, readonly fileIssues: Issue[]) {
    super(
      `${file}: ${fileIssues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`,
      fileIssues.map((i) => ({ path: fileIssuePath(file, i.path), message: i.message })),
    );
  }
}
