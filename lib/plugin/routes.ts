/**
 * The plugin protocol's calls, mapped onto the two backends. Every reply is a JSON object with
 * status 200 (the engine fails on an empty body); a failure is `{"Err"}` for NetworkDriver calls and
 * `{"Error"}` for IpamDriver calls, which the engine shows the user as `remote: <message>`. The
 * engine sends every call as a POST; the method is not checked.
 */
import type { Logger } from "pino";
import { type Reply, type Request, Router } from "../api/http.js";
import { messageOf, TrellisError } from "../common/errors.js";
import type { IpamBackend, NetworkDriverBackend } from "./backend.js";
import {
  IPAM_DRIVER,
  NETWORK_DRIVER,
  PLUGIN_CONTENT_TYPE,
  parseCreateEndpoint,
  parseCreateNetwork,
  parseEndpointRef,
  parseJoin,
  parseNetworkId,
  parsePoolId,
  parseProgram,
  parseReleaseAddress,
  parseRequestAddress,
  parseRequestPool,
} from "./protocol.js";

type Call = (body: unknown) => Promise<object> | object;

const EMPTY = {};
/** A call whose answer is "done": `{}`. */
const ack = (p: Promise<void>) => p.then(() => EMPTY);

function networkDriverCalls(d: NetworkDriverBackend): Record<string, Call> {
  return {
    GetCapabilities: () => d.capabilities(),
    CreateNetwork: (b) => ack(d.createNetwork(parseCreateNetwork(b))),
    DeleteNetwork: (b) => ack(d.deleteNetwork(parseNetworkId(b))),
    CreateEndpoint: (b) => d.createEndpoint(parseCreateEndpoint(b)),
    EndpointOperInfo: (b) => ({ Value: d.endpointOperInfo(parseEndpointRef(b)) }),
    DeleteEndpoint: (b) => ack(d.deleteEndpoint(parseEndpointRef(b))),
    Join: (b) => d.join(parseJoin(b)),
    Leave: (b) => ack(d.leave(parseEndpointRef(b))),
    ProgramExternalConnectivity: (b) => ack(d.programExternalConnectivity(parseProgram(b))),
    RevokeExternalConnectivity: (b) => ack(d.revokeExternalConnectivity(parseEndpointRef(b))),
    // Node discovery and network allocation are swarm's (global scope); a local-scope driver
    // learns its peers through trellis's own gossip, so these only acknowledge.
    DiscoverNew: () => EMPTY,
    DiscoverDelete: () => EMPTY,
    AllocateNetwork: () => ({ Options: {} }),
    FreeNetwork: () => EMPTY,
  };
}

function ipamCalls(i: IpamBackend): Record<string, Call> {
  return {
    GetCapabilities: () => i.capabilities(),
    GetDefaultAddressSpaces: () => i.addressSpaces(),
    RequestPool: (b) => i.requestPool(parseRequestPool(b)),
    ReleasePool: (b) => ack(i.releasePool(parsePoolId(b))),
    RequestAddress: (b) => i.requestAddress(parseRequestAddress(b)),
    ReleaseAddress: (b) => ack(i.releaseAddress(parseReleaseAddress(b))),
  };
}

const reply = (body: object): Reply => ({
  status: 200,
  body,
  headers: { "Content-Type": PLUGIN_CONTENT_TYPE },
});

/** Routes on the path alone; errors become the subsystem's error object. */
export class PluginRouter extends Router {
  private readonly calls = new Map<string, { subsystem: string; call: Call }>();

  constructor(
    driver: NetworkDriverBackend,
    ipam: IpamBackend,
    private readonly log: Logger,
  ) {
    super();
    const activate: Call = () => ({ Implements: [NETWORK_DRIVER, IPAM_DRIVER] });
    this.calls.set("/Plugin.Activate", { subsystem: "Plugin", call: activate });
    for (const [subsystem, calls] of [
      [NETWORK_DRIVER, networkDriverCalls(driver)],
      [IPAM_DRIVER, ipamCalls(ipam)],
    ] as const) {
      for (const [method, call] of Object.entries(calls)) {
        this.calls.set(`/${subsystem}.${method}`, { subsystem, call });
      }
    }
  }

  override async dispatch(req: Request): Promise<Reply> {
    const entry = this.calls.get(req.path);
    if (!entry) {
      return { status: 404, body: { Err: `unknown plugin call ${req.path}` } };
    }
    try {
      return reply(await entry.call(req.body));
    } catch (err) {
      const message = messageOf(err);
      const fields = { call: req.path.slice(1), err: message };
      const usersFault = err instanceof TrellisError && err.code !== "INTERNAL" && err.code !== "KERNEL";
      if (usersFault) this.log.info(fields, "plugin call refused");
      else this.log.error({ ...fields, stack: (err as Error)?.stack }, "plugin call failed");
      return reply(entry.subsystem === IPAM_DRIVER ? { Error: message } : { Err: message });
    }
  }
}

/** For serve(): a body that is not JSON never reaches a handler. */
export function pluginErrorReply(err: unknown): Reply {
  return { status: 400, body: { Err: messageOf(err) }, headers: { "Content-Type": PLUGIN_CONTENT_TYPE } };
}
