# A full zone evicts outcomes, never the claim of an action still under
# way: a repeat of such a msg_id is a pending duplicate however many new
# actions came since (the least recently used claim was evicted before,
# and the repeat ran a second time).  A zone that holds nothing but
# claims refuses new actions with RATE_LIMITED, says so once in the log,
# and takes actions again once the acks came.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'tz-a',
    heartbeat_interval => 0, ack_delay => tscale(4));

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 128k;
    amonitor_target tz-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 20s;
    amonitor_send_queue 4096;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }
               location = /metrics { amonitor_metrics; }',
)->run;

$t->ignore_log(qr/amonitor zone is full/);

ok($sdk->wait_connections(1), 'the SDK is dialed');

sub action {
    my ($id) = @_;
    return { msg_id => $id, type => 'action', target_id => 'tz-a',
        timestamp => now_ms(), payload => { action => 'restart' } };
}

my $first = 'first-' . uuid4();
my $a = $t->panel('/ws/panel');
$a->send_json(action($first));
ok(wait_for(sub { $sdk->executed($first) }, 5), 'the first action runs');

# many more actions than the zone holds, all waiting for their acks
my $b = $t->panel('/ws/panel');
my @ids = map { uuid4() } 1 .. 900;
$b->send_json(action($_)) for @ids;

my $err = $b->recv_type('error', timeout => 10);
ok($err, 'a zone full of claims refuses new actions');
my $one = $err && $err->{json}{payload};
is($one && $one->{code}, 'RATE_LIMITED', '... with RATE_LIMITED');
like($one && $one->{message}, qr/full of actions waiting for their acks/,
    '... that says why');
$t->error_log_like(
    qr/\[warn\].*amonitor zone is full of actions waiting for their acks: msg_id "[^"]+" refused/,
    'the refusal is in the log');

# the repeat, from another panel, while the first still waits
my $c = $t->panel('/ws/panel');
$c->send_json(action($first));
my $d = $c->answer_to($first, 5);
like($d && $d->{payload}{message}, qr/^duplicate ignored/,
    'the repeat of the first action is a duplicate');
is($d && $d->{payload}{state}, 'pending', '... pending');

my $ack = $a->answer_to($first, tscale(10));
ok($ack && $ack->{type} eq 'action_ack', 'the first action is acked');
is($sdk->executed($first), 1, 'the first action ran once');

my @twice = grep { $sdk->executed($_) > 1 } @ids;
is(scalar @twice, 0, 'no action ran twice');

# once the acks came, outcomes can be evicted and actions are taken again
sleep_loop(tscale(5));
my $late = 'late-' . uuid4();
$c->send_json(action($late));
my $l = $c->answer_to($late, tscale(10));
ok($l && $l->{type} eq 'action_ack',
    'after the acks, a new action is taken again')
    or diag(explain($l));
cmp_ok($t->metric('amonitor_evictions_total') // 0, '>', 0,
    'outcomes were evicted for it');

$t->stop;
done_testing();
