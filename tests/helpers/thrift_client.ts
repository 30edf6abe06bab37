// Test client of the Thrift push listener: one call per connection through the Apache Thrift
// library's own client stack (framed transport, binary protocol), closed before returning.

import { EmsgInfPushClient } from "../../src/rpc/thrift/emsg_inf_push.ts";
import {
  createClient,
  createConnection,
  TBinaryProtocol,
  TFramedTransport,
} from "../../src/rpc/thrift/runtime.ts";

/** Calls `process` on 127.0.0.1:`port` and resolves to the server's answer. */
export function thriftProcess(
  port: number,
  licence: string,
  sn: string,
  content: string,
): Promise<string> {
  return callOnce(port, (client) => client.process(licence, sn, content));
}

/** Calls `process_batch` on 127.0.0.1:`port` and resolves to the server's answer. */
export function thriftProcessBatch(
  port: number,
  licence: string,
  sn: string,
  contents: string[],
): Promise<string> {
  return callOnce(port, (client) => client.process_batch(licence, sn, contents));
}

/**
 * Opens a connection, makes one call and closes the connection, waiting for the close so
 * that no socket outlives the call. Rejects when the server closes without answering.
 */
async function callOnce(
  port: number,
  call: (client: EmsgInfPushClient) => Promise<string>,
): Promise<string> {
  const connection = createConnection("127.0.0.1", port, {
    transport: TFramedTransport,
    protocol: TBinaryProtocol,
  });
  const closed = new Promise<void>((resolve) => connection.on("close", resolve));
  try {
    return await new Promise<string>((resolve, reject) => {
      connection.on("error", reject);
      closed.then(() => reject(new Error("thrift push closed the connection without answering")));
      call(createClient(EmsgInfPushClient, connection)).then(resolve, reject);
    });
  } finally {
    connection.end();
    await closed;
  }
}
