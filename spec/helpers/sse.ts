/** One Server-Sent Events frame with its JSON data. */
export interface SseFrame {
  event: string;
  data: any;
}

/** Appends every `event:`/`data:` frame of an SSE body to `frames` until the stream ends or aborts. */
export async function collectSse(body: AsyncIterable<Uint8Array>, frames: SseFrame[]): Promise<void> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    for (let i; (i = buf.indexOf('\n\n')) >= 0; buf = buf.slice(i + 2)) {
      const block = buf.slice(0, i);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) frames.push({ event, data: JSON.parse(data) });
    }
  }
}
