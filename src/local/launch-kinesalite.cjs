// kinesalite's own cli.js has no --host option and listens on every interface; this is the same CLI bound to
// 127.0.0.1 so a laptop's emulator is not reachable from the network.
const { dirname, join } = require('node:path');
const kinesaliteMain = require.resolve('kinesalite');
const minimist = require(require.resolve('minimist', { paths: [kinesaliteMain] }));

// kinesalite never answers an AT_TIMESTAMP GetShardIterator when no record arrived at or after the timestamp
// (its lookup waits for a match that never comes). Kinesis then returns an iterator at the tip; so does this:
// after the shard's last record (all older than the timestamp), or its start when it is empty. Patched before
// kinesalite loads its actions.
const actionPath = join(dirname(kinesaliteMain), 'actions', 'getShardIterator.js');
const db = require(join(dirname(kinesaliteMain), 'db'));
const getShardIterator = require(actionPath);
require.cache[actionPath].exports = function getShardIteratorAtTip(store, data, cb) {
  if (
    data.ShardIteratorType !== 'AT_TIMESTAMP' ||
    data.Timestamp == null ||
    data.Timestamp * 1000 > Date.now()
  ) {
    return getShardIterator(store, data, cb);
  }
  let shardIx;
  try {
    shardIx = db.resolveShardId(data.ShardId).shardIx;
  } catch {
    return getShardIterator(store, data, cb); // its own error
  }
  let matched = false;
  let last;
  store
    .getStreamDb(data.StreamName)
    .createReadStream({ gt: db.shardIxToHex(shardIx), lt: db.shardIxToHex(shardIx + 1) })
    .on('data', (item) => {
      if (item.value.ApproximateArrivalTimestamp >= data.Timestamp) matched = true;
      else if (!matched) last = item.key.split('/')[1];
    })
    .on('error', (err) => cb(err))
    .on('end', () => {
      if (matched) return getShardIterator(store, data, cb);
      const { Timestamp: _, ...rest } = data;
      const tip = last
        ? { ...rest, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: last }
        : { ...rest, ShardIteratorType: 'TRIM_HORIZON' };
      getShardIterator(store, tip, cb);
    });
};

const kinesalite = require(kinesaliteMain);
const argv = minimist(process.argv.slice(2));
const server = kinesalite(argv).listen(argv.port || 4567, argv.host || '127.0.0.1', () => {
  const address = server.address();
  console.log('kinesalite listening at http://%s:%s', address.address, address.port);
});
