import {inject} from 'vitest'

/** A Redis deployment a parameterised suite runs against. */
export interface Deployment {
  /** For test titles: `one server` or `cluster`. */
  name: string
  /** The URL raptor is given (on a cluster, one node: raptor finds the others). */
  url: string
  cluster: boolean
}

/**
 * Every deployment the durable-consumer and agent suites run against, from the global setup: the
 * one redis-server, and the real 3-master Redis Cluster. Use with `describe.each(deployments())`.
 */
export function deployments(): Deployment[] {
  return [
    {name: 'one server', url: inject('redisUrl'), cluster: false},
    {name: 'cluster', url: inject('clusterUrl'), cluster: true},
  ]
}
