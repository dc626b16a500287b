// A minimal SSE GraphQL client over fetch (Yoga's "distinct connections" mode), for tests.
import { observe, registerSecretsFromGraphQL } from './leaks.js';
import { sseMessages, type SseMessage } from './sse-messages.js';

export type { SseMessage };

export async function* sseRequest(url: string, body: unknown, headers: Record<string, string>, signal?: AbortSignal): AsyncGenerator<SseMessage> {
  const req = body as { query?: unknown; variables?: unknown } | null;
  registerSecretsFromGraphQL(req?.query, req?.variables);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: JSON.stringify(body),
    signal,
  });
  if (res.status !== 200 || !res.body) throw new Error(`SSE request failed with HTTP ${res.status}`);
  for await (const msg of sseMessages(res.body as unknown as AsyncIterable<Uint8Array>)) {
    observe('subscription', msg.data);
    yield msg;
  }
}
