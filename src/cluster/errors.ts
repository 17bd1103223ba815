/** Errors of cluster mode, each with a code the CLI and tests can match (one line of text). */
export type ClusterErrorCode =
  | 'EETCD' // etcd unreachable at start
  | 'EUPLINK' // --uplink is not an address of this host
  | 'EHOSTLIVE' // another daemon holds this host id
  | 'ESUBNETS' // no free /24 left
  | 'ENOHOST' // hosts:drain of an unknown host
  | 'ELASTHOST' // hosts:drain of the last host that can run a type
  | 'EIMPORT' // cluster:import refused
  | 'ESLUG' // a slug could not be fetched or did not match its hash
  | 'EOPTION'; // a cluster flag is invalid

export class ClusterError extends Error {
  constructor(
    readonly code: ClusterErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ClusterError';
  }
}
