#!/usr/bin/env node
// kafkajs 2.2.4 group consumer against a running broker.
//
// Usage: node kafkajs_group.js consume --bootstrap HOST:PORT --topic T --group G --expect N
//                                      [--timeout SECONDS]
//
// Joins G (consumer.subscribe + run, autoCommit off), prints one JSON event per line in the format of
// group_consumer.py consume:
//   {"event": "assigned", "member": ID, "partitions": [...]}   (from the GROUP_JOIN instrumentation event)
//   {"event": "msg", "p": P, "o": O, "id": I}
//   {"event": "committed", "offsets": {"P": OFFSET, ...}}
// and once it has seen N distinct (partition, offset) pairs it commits the next offset of every
// partition it read with consumer.commitOffsets, reads the group's offsets back with
// admin.fetchOffsets and prints a result line {"consumed", "distinct", "positions", "committed",
// "errors", ...}; it exits non-zero on any error. Messages are make_message(topic, i) from
// tests/clients/testdata.py; this script checks the id and tag headers and the key (the values are
// random bytes from Python's generator; the test compares each message's id with its position).
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')

const MAX_LISTED_ERRORS = 20
const result = { mode: 'consume', client: 'kafkajs', errors: [], error_count: 0 }

function error(message) {
  result.error_count += 1
  if (result.errors.length < MAX_LISTED_ERRORS) result.errors.push(message)
  process.stderr.write(`error: ${message}\n`)
}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

function finish(fields) {
  Object.assign(result, fields)
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(result.error_count ? 1 : 0)
}

function parseArgs(argv) {
  const [mode, ...rest] = argv
  const opts = { mode, timeout: 60 }
  for (let i = 0; i < rest.length; i += 2) {
    const value = rest[i + 1]
    if (value === undefined) throw new Error(`missing value for ${rest[i]}`)
    opts[rest[i].replace(/^--/, '')] = value
  }
  if (mode !== 'consume') throw new Error(`unknown mode ${mode}`)
  for (const required of ['bootstrap', 'topic', 'group', 'expect']) {
    if (!opts[required]) throw new Error(`--${required} is required`)
  }
  opts.expect = Number(opts.expect)
  opts.timeout = Number(opts.timeout)
  return opts
}

function headerText(headers, name) {
  const v = headers && headers[name]
  return v === undefined || v === null ? null : Buffer.isBuffer(v) ? v.toString() : String(v)
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  Object.assign(result, { topic: opts.topic, group: opts.group })
  const timer = setTimeout(() => {
    error(`timed out after ${opts.timeout}s`)
    finish({})
  }, opts.timeout * 1000)

  const kafka = new Kafka({
    clientId: 'strom-kafkajs-group',
    brokers: [opts.bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 5 },
  })
  const consumer = kafka.consumer({ groupId: opts.group, allowAutoTopicCreation: false, maxWaitTimeInMs: 500 })
  consumer.on(consumer.events.GROUP_JOIN, e => {
    const assigned = (e.payload.memberAssignment && e.payload.memberAssignment[opts.topic]) || []
    emit({ event: 'assigned', member: e.payload.memberId, partitions: [...assigned].sort((a, b) => a - b) })
  })
  consumer.on(consumer.events.CRASH, e => error(`consumer crashed: ${e.payload.error}`))

  await consumer.connect()
  await consumer.subscribe({ topics: [opts.topic], fromBeginning: true })
  const positions = {}
  const seen = new Set()
  let consumed = 0
  await new Promise((resolve, reject) => {
    consumer
      .run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          const offset = Number(message.offset)
          const id = Number(headerText(message.headers, 'id'))
          if (!Number.isInteger(id) || headerText(message.headers, 'id') === null) {
            error(`${opts.topic}/${partition}@${offset}: no id header`)
          } else {
            if (headerText(message.headers, 'tag') !== opts.topic) error(`${opts.topic}/${partition}@${offset}: wrong tag header`)
            const key = id % 97 === 13 ? null : `key-${id % 64}`
            const gotKey = message.key === null ? null : message.key.toString()
            if (gotKey !== key) error(`${opts.topic}/${partition}@${offset}: key ${gotKey}, expected ${key}`)
            if ((message.value === null) !== (id % 89 === 7)) error(`${opts.topic}/${partition}@${offset}: value null-ness`)
          }
          if (offset < (positions[partition] || 0)) {
            error(`${opts.topic}/${partition}: offset ${offset} after ${positions[partition] - 1}`)
          }
          positions[partition] = offset + 1
          seen.add(`${partition}:${offset}`)
          consumed += 1
          emit({ event: 'msg', p: partition, o: offset, id })
          if (seen.size >= opts.expect) resolve()
        },
      })
      .catch(reject)
  })

  const toCommit = Object.entries(positions).map(([p, o]) => ({ topic: opts.topic, partition: Number(p), offset: String(o) }))
  await consumer.commitOffsets(toCommit)
  emit({ event: 'committed', why: 'final', offsets: Object.fromEntries(Object.entries(positions)) })

  const admin = kafka.admin()
  await admin.connect()
  const fetched = await admin.fetchOffsets({ groupId: opts.group, topics: [opts.topic] })
  const committed = {}
  for (const t of fetched) {
    for (const p of t.partitions) {
      if (Number(p.offset) >= 0) committed[String(p.partition)] = Number(p.offset)
    }
  }
  await admin.disconnect()
  await consumer.disconnect()
  clearTimeout(timer)
  finish({ consumed, distinct: seen.size, positions, committed })
}

main().catch(e => {
  error(`${e.name}: ${e.message}`)
  finish({})
})
