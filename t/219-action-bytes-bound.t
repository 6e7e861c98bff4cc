# The frames of a panel's actions count against
# amonitor_connection_buffer_limit while they wait to be written: for
# their claim, for their SDK's connection being made, for the owner in a
# cluster.  Before, a panel could send amonitor_send_queue actions of up
# to amonitor_max_message_size each for a target whose SDK answers its
# handshake late, and the worker held them all (1,024 x 1 MB with the
# defaults).  Now an action whose frame would pass the limit is refused
# at once (RATE_LIMITED, released: a retry may run), and the bytes are
# given back as soon as the frame is queued for the SDK or the action
# ends.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Process qw(proc_mem);

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'ab-ok',
    heartbeat_interval => 0);
# takes the TCP connection (the kernel's backlog) and never answers the
# upgrade: the agent's dial stays in progress
my $mute = raw_sdk_listen($t->port(2));

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_ping 0;
    amonitor_max_message_size 256k;
    amonitor_connection_buffer_limit 1m;
    amonitor_connect_timeout 30s;
    amonitor_ack_timeout 8s;
    amonitor_target ab-ok ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target ab-mute ws://127.0.0.1:%%PORT_2%%/;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the SDK is connected');
my ($worker) = $t->worker_pids;
sub anon_kb { return proc_mem($worker)->{RssAnon} }

my $panel = $t->panel('/ws/panel');
my $PAD = 'p' x (200 * 1024);
sub big_action {
    my ($target) = @_;
    my $id = uuid4();
    $panel->send_json({ msg_id => $id, type => 'action',
        target_id => $target, timestamp => now_ms(),
        payload => { action => 'restart', pad => $PAD } });
    return $id;
}

# one at a time to an SDK that reads: each frame is queued for it and
# its bytes given back, so the tenth and the thirtieth go as the first
my $acked = 0;
for (1 .. 30) {
    my $id = big_action('ab-ok');
    $acked++ if $panel->recv_type('action_ack', timeout => 5,
        action_msg_id => $id);
}
is($acked, 30, '30 actions of 200 KB, one after the other, are all acked');

# all at once to the target whose handshake never ends: they wait
sub code_of {
    my ($id) = @_;
    my ($a) = $panel->answers_to($id);
    return $a ? $a->{payload}{code} // $a->{type} : '';
}
my $before = anon_kb();
my @ids = map { big_action('ab-mute') } 1 .. 40;
my @limited;
wait_for(sub {
    @limited = grep { code_of($_) eq 'RATE_LIMITED' } @ids;
    @limited >= 34;
}, tscale(5));
sleep_loop(0.5);
@limited = grep { code_of($_) eq 'RATE_LIMITED' } @ids;
my @waiting = grep { code_of($_) eq '' } @ids;
my $after = anon_kb();
note(sprintf('RATE_LIMITED: %d of 40, %d waiting; worker RssAnon %d kB '
    . 'before, %d kB while they wait', scalar @limited, scalar @waiting,
    $before, $after));
# 1m holds four frames of 200 KB besides what is being reassembled
cmp_ok(scalar @limited, '>=', 34, 'the actions past the limit are refused');
cmp_ok(scalar @waiting, '>=', 3, 'the ones within it wait');
is(@limited + @waiting, 40, 'nothing else answered them yet');
my ($first) = $panel->answers_to($limited[0] // '');
like($first && $first->{payload}{message}, qr/amonitor_connection_buffer_limit/,
    'the refusal names the limit');

SKIP: {
    skip "the sanitizers' and valgrind's allocators keep freed blocks", 1
        if $ENV{TEST_AMON_SANITIZER} || $ENV{TEST_NGINX_VALGRIND};
    # 40 x 200 KB = 8 MB if each were kept
    cmp_ok($after - $before, '<', 3 * 1024,
        'the worker holds under 3 MB for them');
}

# the waiting ones end when their ack is due: TARGET_UNAVAILABLE
wait_for(sub { !grep { code_of($_) eq '' } @waiting }, tscale(15));
is(scalar(grep { code_of($_) eq 'TARGET_UNAVAILABLE' } @waiting),
    scalar @waiting, 'the waiting ones end TARGET_UNAVAILABLE');
$panel->clear;

# their bytes were given back: the panel's next actions run
$acked = 0;
for (1 .. 10) {
    my $id = big_action('ab-ok');
    $acked++ if $panel->recv_type('action_ack', timeout => 5,
        action_msg_id => $id);
}
is($acked, 10, 'and then 10 more to the SDK that reads are acked');

$panel->close(1000);
$t->ignore_log(qr/\[error\].*(?:upstream timed out|timed out|handshake)/);
$t->stop;

done_testing;
