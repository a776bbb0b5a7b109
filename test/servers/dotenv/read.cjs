// Reads dotenv files with the dotenv package of npm, as an application's
// require('dotenv').config() would: for each path on a line of stdin, one
// line of JSON on stdout with what dotenv.parse makes of the file's bytes.
'use strict'
const fs = require('fs')
const path = require('path')
const readline = require('readline')
const dotenv = require(path.join(__dirname, 'node_modules', 'dotenv'))

const rl = readline.createInterface({ input: process.stdin, terminal: false })
rl.on('line', (file) => {
  let out
  try {
    out = dotenv.parse(fs.readFileSync(file))
  } catch (e) {
    out = { __error__: String(e && e.name) }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
})
