# Who closed an SDK connection, as the error log tells it.  A reload or
# a stop (QUIT) makes each old worker send its SDKs 1001 "agent shutting
# down"; the SDK only answers it.  That answer is not "SDK closed the
# connection" at warn (docs/deploy.md section 5 keeps warn for a close the
# SDK starts): it is an info line saying the SDK answered the agent's
# close.  A close the SDK starts itself (1001 too) still is a warn line.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 2);
my $sdk = fake_sdk(port => $t->port(1), target_id => 't1',
    heartbeat_interval => 0.2);
$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 100ms 500ms;\n"
        . "amonitor_target t1 ws://127.0.0.1:%%PORT_1%%/;",
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1, 5), 'the SDK is connected');
sleep_loop(0.5);

# --- a reload: the agent closes ---------------------------------------------

my @ids = $sdk->conn_ids;
my @old = $t->worker_pids;
$t->mark_log;
ok($t->reload, 'reload');
ok($sdk->wait_closes(\@ids, 5), 'the old connections ended');
ok(wait_for(sub { !grep { kill 0, $_ } @old }, 5), 'the old workers exit');
ok($sdk->wait_connections(1, 5), 'the new workers connect');

my @codes = map { $_->{code} } $sdk->closes_of(@ids);
is_deeply([ sort { $a <=> $b } @codes ], [ map { 1001 } @ids ],
    'the agent closed them with 1001');
no_error_log(qr/\[warn\].*SDK closed the connection/,
    'no "SDK closed the connection" warn after a reload');
error_log_like(qr/\[info\].*amonitor: SDK answered the agent's close \(agent shutting down\) with 1001.*upstream: t1/,
    'an info line says that the SDK answered the agent\'s close');

# --- the SDK closes on its own: still a warn line ----------------------------

sleep_loop(0.5);
$t->mark_log;
@ids = $sdk->conn_ids;
$sdk->close_all(1001, 'sdk going away');
ok($sdk->wait_closes(\@ids, 5), 'the SDK closed its connections');
ok(wait_error_log(qr/\[warn\].*amonitor: SDK closed the connection with 1001.*upstream: t1/, 3),
    'a close the SDK starts is logged at warn, with its code');
no_error_log(qr/answered the agent's close/,
    'and not as an answer to the agent');
ok($sdk->wait_connections(1, 5), 'the agent reconnects');
sleep_loop(0.5);

# --- a stop (QUIT): the agent closes ------------------------------------------

$t->mark_log;
ok($t->stop, 'stop (QUIT)');
no_error_log(qr/\[warn\].*SDK closed the connection/,
    'no "SDK closed the connection" warn at a stop');

$sdk->stop;

done_testing();
