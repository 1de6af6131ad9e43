#!/usr/bin/env node
// kafkajs 2.2.4 checks against a running broker.
//
// Usage: node kafkajs_roundtrip.js MODE --bootstrap HOST:PORT --topic T --count N [--partitions P]
//                                  [--compression none|gzip]
//
// Modes (each prints one JSON result as its last stdout line and exits non-zero on any error):
//   produce-fetch  admin.createTopics, producer.send of COUNT keyed messages with headers (acks=-1),
//                  checks every send's base offsets, admin.fetchTopicMetadata and
//                  admin.fetchTopicOffsets (ListOffsets earliest/latest), then reads every partition
//                  back with kafkajs's own Fetch request and record decoder and verifies keys, values,
//                  headers, timestamps and offsets byte for byte.
//   group-consume  the same produce step, then a kafkajs consumer in a consumer group reads everything
//                  from the beginning and verifies it. Needs the group coordinator APIs.
//
// kafkajs has no public consumer without a group, so produce-fetch reads through kafkajs's internal
// Cluster/Broker objects (`broker.fetch`). They are internal, but the version is pinned (2.2.4) and
// this is exactly the request and decoding path its consumer uses.
'use strict'

// kafkajs warns about its v2 partitioner change on every producer; messages here set partitions.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const crypto = require('crypto')
const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const DEADLINE_MS = 100_000 // below the Rust harness deadline (120 s), so the script reports first
const MAX_LISTED_ERRORS = 20
const SEND_BATCH = 100

// ---- result reporting -------------------------------------------------------------------------

const result = { errors: [], error_count: 0 }

function error(message) {
  result.error_count += 1
  if (result.errors.length < MAX_LISTED_ERRORS) result.errors.push(message)
  process.stderr.write(`error: ${message}\n`)
}

function finish(fields) {
  Object.assign(result, fields)
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(result.error_count ? 1 : 0)
}

// ---- arguments --------------------------------------------------------------------------------

function parseArgs(argv) {
  const [mode, ...rest] = argv
  const opts = { mode, partitions: 3, compression: 'none' }
  for (let i = 0; i < rest.length; i += 2) {
    const name = rest[i].replace(/^--/, '')
    const value = rest[i + 1]
    if (value === undefined) throw new Error(`missing value for ${rest[i]}`)
    opts[name] = value
  }
  for (const required of ['bootstrap', 'topic', 'count']) {
    if (!opts[required]) throw new Error(`--${required} is required`)
  }
  if (!['produce-fetch', 'group-consume'].includes(mode)) throw new Error(`unknown mode ${mode}`)
  if (!['none', 'gzip'].includes(opts.compression)) throw new Error('--compression must be none or gzip')
  opts.count = Number(opts.count)
  opts.partitions = Number(opts.partitions)
  return opts
}

// ---- deterministic messages -------------------------------------------------------------------

// Message `index` of run `tag` is a pure function of both, so the verifier rebuilds exact bytes.
function makeMessage(tag, index, partitions, baseTimestamp) {
  const seed = crypto.createHash('sha256').update(`${tag}/${index}`).digest()
  const randomBytes = n => {
    const out = Buffer.alloc(n)
    for (let i = 0; i < n; i += 32) {
      crypto.createHash('sha256').update(seed).update(String(i)).digest().copy(out, i, 0, Math.min(32, n - i))
    }
    return out
  }
  const key = index % 97 === 13 ? null : Buffer.from(`key-${index % 64}`)
  let value = null
  if (index % 89 !== 7) {
    const sizes = [0, 1, 7, 10 + (seed[0] % 190), 200 + seed.readUInt16BE(1) % 1800]
    const size = index % 500 === 250 ? 20_000 + seed.readUInt16BE(3) % 20_000 : sizes[seed[5] % sizes.length]
    const noise = randomBytes(Math.floor(size / 4))
    const text = Buffer.from(`strom message ${index} `.repeat(Math.floor(size / 16) + 1)).subarray(0, size - noise.length)
    value = Buffer.concat([noise, text])
  }
  const headers = {
    id: Buffer.from(String(index)),
    tag: Buffer.from(tag),
    bin: Buffer.concat([Buffer.from([0, 255]), seed.subarray(8, 14)]),
  }
  if (index % 3 === 0) headers.dup = [Buffer.from('first'), Buffer.from('second')]
  if (index % 11 === 0) headers.empty = Buffer.alloc(0)
  return {
    key,
    value,
    headers,
    // Explicit partitions make each message's offset predictable from the send results.
    partition: index % partitions,
    timestamp: String(baseTimestamp + index),
  }
}

function sameBytes(a, b) {
  if (a === null || a === undefined) return b === null || b === undefined
  if (b === null || b === undefined) return false
  return Buffer.compare(a, b) === 0
}

function sameHeaders(expected, actual) {
  const keys = Object.keys(expected).sort()
  const actualKeys = Object.keys(actual || {}).sort()
  if (JSON.stringify(keys) !== JSON.stringify(actualKeys)) return false
  return keys.every(k => {
    const e = [].concat(expected[k])
    const a = [].concat(actual[k])
    return e.length === a.length && e.every((v, i) => sameBytes(v, a[i]))
  })
}

function verifyRecord(where, expected, record) {
  if (!sameBytes(expected.key, record.key)) error(`${where}: key differs`)
  if (!sameBytes(expected.value, record.value)) {
    const len = v => (v === null || v === undefined ? 'null' : `${v.length} bytes`)
    error(`${where}: value differs (expected ${len(expected.value)}, got ${len(record.value)})`)
  }
  if (!sameHeaders(expected.headers, record.headers)) error(`${where}: headers differ`)
  if (String(record.timestamp) !== expected.timestamp) {
    error(`${where}: timestamp expected ${expected.timestamp}, got ${record.timestamp}`)
  }
}

// ---- steps ------------------------------------------------------------------------------------

async function createTopic(kafka, opts) {
  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic: opts.topic, numPartitions: opts.partitions, replicationFactor: 1 }],
  })
  if (!created) error(`createTopics reported that ${opts.topic} already existed`)
  const metadata = await admin.fetchTopicMetadata({ topics: [opts.topic] })
  const partitions = metadata.topics[0].partitions
  if (partitions.length !== opts.partitions) {
    error(`fetchTopicMetadata: ${partitions.length} partitions, expected ${opts.partitions}`)
  }
  for (const p of partitions) {
    if (p.partitionErrorCode !== 0 || p.leader < 0) error(`partition ${p.partitionId} has no leader: ${JSON.stringify(p)}`)
  }
  return admin
}

// Produces all messages; returns per partition the list of message indices in offset order.
async function produceAll(kafka, opts, baseTimestamp) {
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const perPartition = Array.from({ length: opts.partitions }, () => [])
  const compression = opts.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None
  for (let start = 0; start < opts.count; start += SEND_BATCH) {
    const indices = []
    for (let i = start; i < Math.min(opts.count, start + SEND_BATCH); i++) indices.push(i)
    const messages = indices.map(i => makeMessage(opts.topic, i, opts.partitions, baseTimestamp))
    const sent = await producer.send({ topic: opts.topic, acks: -1, compression, messages })
    for (const r of sent) {
      if (r.errorCode !== 0) error(`send to partition ${r.partition} returned error ${r.errorCode}`)
      // This send's messages for r.partition got offsets baseOffset, baseOffset+1, ...: they must
      // directly follow what the partition already holds (dense offsets, no loss, no duplicates).
      const expectedBase = perPartition[r.partition].length
      if (Number(r.baseOffset) !== expectedBase) {
        error(`send to partition ${r.partition}: baseOffset ${r.baseOffset}, expected ${expectedBase}`)
      }
    }
    for (const i of indices) perPartition[i % opts.partitions].push(i)
  }
  await producer.disconnect()
  return perPartition
}

async function checkListOffsets(admin, opts, perPartition) {
  const offsets = await admin.fetchTopicOffsets(opts.topic)
  if (offsets.length !== opts.partitions) error(`fetchTopicOffsets: ${offsets.length} partitions`)
  for (const o of offsets) {
    const want = perPartition[o.partition].length
    if (Number(o.low) !== 0 || Number(o.high) !== want) {
      error(`fetchTopicOffsets partition ${o.partition}: low ${o.low} high ${o.high}, expected 0 and ${want}`)
    }
  }
  return offsets
}

// Reads each partition from offset 0 to its end with kafkajs's Fetch request (no consumer group).
async function fetchAndVerify(kafka, opts, perPartition, baseTimestamp) {
  const createCluster = Object.getOwnPropertySymbols(kafka).find(s => s.description === 'private:Kafka:createCluster')
  if (!createCluster) throw new Error('kafkajs internals changed: no private createCluster (is kafkajs 2.2.4 installed?)')
  const cluster = kafka[createCluster]({ allowAutoTopicCreation: false })
  await cluster.connect()
  await cluster.addTargetTopic(opts.topic)
  let fetched = 0
  for (const meta of cluster.findTopicPartitionMetadata(opts.topic)) {
    const partition = meta.partitionId
    const expected = perPartition[partition]
    const broker = await cluster.findBroker({ nodeId: String(meta.leader) })
    let next = 0
    let emptyFetches = 0
    while (next < expected.length) {
      const response = await broker.fetch({
        replicaId: -1,
        isolationLevel: 1, // READ_COMMITTED, as kafkajs's consumer sends
        maxWaitTime: 200,
        minBytes: 1,
        maxBytes: 4 << 20,
        topics: [{ topic: opts.topic, partitions: [{ partition, fetchOffset: String(next), maxBytes: 1 << 20 }] }],
      })
      const part = response.responses[0].partitions[0]
      if (part.errorCode !== 0) {
        error(`fetch ${opts.topic}/${partition}@${next}: error code ${part.errorCode}`)
        break
      }
      if (Number(part.highWatermark) !== expected.length) {
        error(`fetch ${opts.topic}/${partition}: high watermark ${part.highWatermark}, expected ${expected.length}`)
      }
      // A fetch may start mid-batch: the client skips records below the requested offset.
      const records = part.messages.filter(m => Number(m.offset) >= next && !m.isControlRecord)
      if (records.length === 0) {
        if (++emptyFetches > 20) {
          error(`fetch ${opts.topic}/${partition}@${next}: no records after 20 fetches (end ${expected.length})`)
          break
        }
        continue
      }
      for (const record of records) {
        const offset = Number(record.offset)
        if (offset !== next) error(`${opts.topic}/${partition}: offset ${offset} where ${next} was expected`)
        if (offset >= expected.length) {
          error(`${opts.topic}/${partition}: record at offset ${offset} past the end ${expected.length}`)
          break
        }
        const index = expected[offset]
        verifyRecord(`${opts.topic}/${partition}@${offset} (message ${index})`,
          makeMessage(opts.topic, index, opts.partitions, baseTimestamp), record)
        fetched += 1
        next = offset + 1
      }
    }
  }
  await cluster.disconnect()
  return fetched
}

async function groupConsume(kafka, opts, perPartition, baseTimestamp) {
  const consumer = kafka.consumer({ groupId: `strom-kafkajs-${opts.topic}`, allowAutoTopicCreation: false })
  await consumer.connect()
  await consumer.subscribe({ topics: [opts.topic], fromBeginning: true })
  const nextOffset = Array(opts.partitions).fill(0)
  let consumed = 0
  await new Promise((resolve, reject) => {
    consumer
      .run({
        eachMessage: async ({ partition, message }) => {
          const offset = Number(message.offset)
          if (offset !== nextOffset[partition]) {
            error(`${opts.topic}/${partition}: offset ${offset} where ${nextOffset[partition]} was expected`)
          }
          nextOffset[partition] = offset + 1
          const index = perPartition[partition][offset]
          if (index === undefined) {
            error(`${opts.topic}/${partition}: unexpected record at offset ${offset}`)
          } else {
            verifyRecord(`${opts.topic}/${partition}@${offset} (message ${index})`,
              makeMessage(opts.topic, index, opts.partitions, baseTimestamp), message)
            consumed += 1
          }
          if (nextOffset.every((n, p) => n >= perPartition[p].length)) resolve()
        },
      })
      .catch(reject)
  })
  await consumer.disconnect()
  return consumed
}

async function main() {
  let opts
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (e) {
    process.stderr.write(`${e.message}\n`)
    process.exit(2)
  }
  Object.assign(result, { mode: opts.mode, topic: opts.topic, compression: opts.compression })
  setTimeout(() => {
    error(`timed out after ${DEADLINE_MS} ms`)
    finish({})
  }, DEADLINE_MS)

  const kafka = new Kafka({
    clientId: 'strom-tests-kafkajs',
    brokers: [opts.bootstrap],
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 5 },
    logLevel: logLevel.WARN,
    // kafkajs logs to stdout by default; stdout is reserved for the JSON result.
    logCreator: () => ({ namespace, level, label, log }) => {
      process.stderr.write(`kafkajs ${label} [${namespace}] ${log.message} ${JSON.stringify(log)}\n`)
    },
  })

  const baseTimestamp = Date.now() - 60_000
  const admin = await createTopic(kafka, opts)
  const perPartition = await produceAll(kafka, opts, baseTimestamp)
  const produced = perPartition.reduce((n, list) => n + list.length, 0)
  if (opts.mode === 'produce-fetch') {
    await checkListOffsets(admin, opts, perPartition)
    await admin.disconnect()
    const fetched = await fetchAndVerify(kafka, opts, perPartition, baseTimestamp)
    if (fetched !== opts.count) error(`fetched ${fetched} of ${opts.count} messages`)
    finish({ produced, fetched, partitions: opts.partitions, per_partition: perPartition.map(l => l.length) })
  } else {
    await admin.disconnect()
    const consumed = await groupConsume(kafka, opts, perPartition, baseTimestamp)
    if (consumed !== opts.count) error(`consumed ${consumed} of ${opts.count} messages`)
    finish({ produced, consumed, partitions: opts.partitions })
  }
}

main().catch(e => {
  error(`${e.name || 'Error'}: ${e.message}`)
  process.stderr.write(`${e.stack}\n`)
  finish({})
})
