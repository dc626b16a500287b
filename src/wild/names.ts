// Names that come from requests become namespaces, file names and SQL identifiers:
// only DNS-1123 labels get through.
import { z } from 'zod';

/** A DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric, ≤ 63 chars. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export const dnsLabel = z
  .string()
  .max(63, 'must be at most 63 characters')
  .regex(DNS_LABEL, 'must be a DNS-1123 label (lower-case letters, digits and "-", starting and ending with a letter or digit)');

export function isDnsLabel(value: string): boolean {
  return DNS_LABEL.test(value);
}
