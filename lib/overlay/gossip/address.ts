/**
 * "host:port" addresses as the transports use them ("10.0.0.1:7946", "[fd00::1]:7946").
 */
import { invalid } from "../../common/errors.js";

export interface HostPort {
  host: string;
  port: number;
}

export function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses "host:port", "[v6]:port"; a bare host gets `defaultPort`. Throws INVALID_ARGUMENT. */
export function parseAddress(text: string, defaultPort?: number): HostPort {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  let host: string | undefined;
  let portText: string | undefined;
  if (bracketed) {
    host = bracketed[1];
    portText = bracketed[2];
  } else {
    const colons = text.split(":").length - 1;
    if (colons === 1) [host, portText] = text.split(":");
    else host = text; // bare IPv4/hostname, or a bare IPv6 address without a port
  }
  if (!host) throw invalid(`invalid gossip address "${text}": empty host`);
  const port = portText === undefined ? defaultPort : Number(portText);
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(`invalid gossip address "${text}": port must be 1-65535`);
  }
  return { host, port };
}
