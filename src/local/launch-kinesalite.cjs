// kinesalite's own cli.js has no --host option and listens on every interface; this is the same CLI bound to
// 127.0.0.1 so a laptop's emulator is not reachable from the network.
const kinesaliteMain = require.resolve('kinesalite');
const minimist = require(require.resolve('minimist', { paths: [kinesaliteMain] }));
const kinesalite = require(kinesaliteMain);

const argv = minimist(process.argv.slice(2));
const server = kinesalite(argv).listen(argv.port || 4567, argv.host || '127.0.0.1', () => {
  const address = server.address();
  console.log('kinesalite listening at http://%s:%s', address.address, address.port);
});
