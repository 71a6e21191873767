/**
 * Endpoint and network events, the seam later subsystems (embedded DNS, overlay, services) hang off.
 * Emitted after the change is committed to the store and programmed in the kernel.
 */
import { EventEmitter } from "node:events";
import type { EndpointRecord, NetworkRecord } from "../store/records.js";

export interface DaemonEventMap {
  "network-created": [NetworkRecord];
  "network-removed": [NetworkRecord];
  "endpoint-connected": [EndpointRecord];
  "endpoint-disconnected": [EndpointRecord];
  /** start-up reconcile finished: listeners should rebuild from the store */
  reconciled: [];
}

export class DaemonEvents extends EventEmitter<DaemonEventMap> {}
