# A connection's send queue is a ring that grows (doubling) while frames
# wait, up to amonitor_send_queue plus the reserved slots.  Once it has
# drained, a ring larger than a pass of steady traffic needs is freed: a
# panel that fell behind and caught up does not keep its largest ring
# for the rest of its life.  A panel that does not read lets 100,000
# events queue up (a ring of 131,072 slots, 2 MiB, which malloc maps on
# its own); strace on the worker then sees that ring unmapped while the
# panel reads them all, before the panel closes (not under the sanitizers
# or valgrind, whose allocators keep freed blocks mapped for a while).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Process qw(read_file strace_start strace_stop);

ok(-x $Test::AMonitor::Process::STRACE, 'strace is installed')
    or BAIL_OUT('no strace');

my $EVENTS = 100_000;
my $RING   = 131_072 * 16;    # slots of 16 bytes, the ring it grows to

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'rq-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target rq-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 200000;
    amonitor_connection_buffer_limit 256m;
    amonitor_ping 0;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
    # a small send buffer on nginx's side: what the panel does not read
    # waits in the module's queue, not in the kernel
    server {
        listen 127.0.0.1:%%PORT_2%% sndbuf=16k;
        location = /ws/panel { amonitor_panel on; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed the SDK');

sub status { try_decode_json($t->http_get('/status')->{body}) // {} }

my ($slow, $resp) = slow_panel($t->port(2), '/ws/panel');
ok($slow, 'a panel with a tiny receive buffer connected') or diag($resp);
ok(wait_for(sub { (status()->{panels} // 0) == 1 }, 5), 'it is counted');

# the events, all sent before the panel reads any, 1000 at a time (the
# fake SDK's loop writes each batch before the next is queued)
my ($id) = $sdk->conn_ids;
my $open = 1;
for (my $i = 1; $i <= $EVENTS; $i += 1000) {
    $open &&= $sdk->send_frames_to($id, map {
        { text => qq({"msg_id":"rq-$_","type":"event",)
            . qq("target_id":"rq-a","timestamp":1,)
            . qq("payload":{"event_name":"e","data":{}}}) }
    } $i .. $i + 999);
    sleep_loop(0.01);
}
ok($open, 'the SDK connection stayed open while it sent them');

ok(wait_for(sub { (status()->{forwarded} // 0) >= $EVENTS }, 60),
    "the agent forwarded the $EVENTS events")
    or diag(explain(status()));
is(status()->{dropped} // 0, 0, 'none was dropped: they wait in the queue');

my ($worker) = $t->worker_pids;
my $trace = $t->prefix . '/strace.txt';
my $spid = strace_start($worker, $trace, '-e', 'trace=munmap,accept4');

# strace has attached once a status request's accept shows in the trace
ok(wait_for(sub {
    status();
    return read_file($trace) =~ /^accept4\(/m;
}, 10), 'strace follows the worker') or BAIL_OUT('strace did not attach');

# read everything the panel was sent
my ($got, $last) = (0, 0);
while ($got < $EVENTS) {
    my $f = raw_read_frame($slow, 10);
    last if !$f || $f->{eof};
    next unless ($f->{payload} // '') =~ /^\{"msg_id":"rq-(\d+)"/;
    $got++;
    $last = $1;
}
is($got, $EVENTS, "the panel read all $EVENTS events");
is($last, $EVENTS, 'the last one last');

# the queue is empty once the last frame went out; the ring went with it
SKIP: {
    skip "the sanitizers' and valgrind's allocators keep freed blocks "
        . 'mapped (quarantine)', 1
        if $ENV{TEST_AMON_SANITIZER} || $ENV{TEST_NGINX_VALGRIND};
    ok(wait_for(sub {
        grep { /^munmap\(0x[0-9a-f]+, (\d+)\)/ && $1 >= $RING }
            split /\n/, read_file($trace);
    }, 5), 'the worker unmapped the 2 MiB ring once it drained')
        or diag(read_file($trace));
}

strace_stop($spid);

# and the panel goes on: a new event reaches it through a new small ring
$sdk->emit_event('after', {});
my $f;
for (1 .. 5) {
    $f = raw_read_frame($slow, 5);
    last if !$f || ($f->{payload} // '') =~ /"event_name":"after"/;
}
like($f && $f->{payload} // '', qr/"event_name":"after"/,
    'a later event still reaches the panel');

done_testing();
