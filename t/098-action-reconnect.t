# An action for a target that is between reconnect attempts does not wait
# for the backoff delay: it makes the worker try at once and waits for
# that attempt (at most amonitor_ack_timeout); when the attempt fails,
# the answer is TARGET_UNAVAILABLE straight away.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $port = $t->port(1);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amonitor 1m;
    amonitor_target kick-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_reconnect 20s 30s;
    amonitor_ack_timeout 2s;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

# nothing listens yet: the first attempt fails, the next is 10 s or more
# away
ok(wait_error_log(qr/\[error\].*upstream: kick-a/, 5),
    'the first attempt to reach kick-a failed');

my $p = $t->panel('/ws/panel');

sub action {
    my ($id) = @_;
    return { msg_id => $id, type => 'action', target_id => 'kick-a',
        timestamp => now_ms(), payload => { action => 'restart' } };
}

sub answer {
    my ($id) = @_;
    my $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH' && ((($j->{type} // '') eq 'error'
            && ($j->{msg_id} // '') eq $id)
            || ($j->{payload}{action_msg_id} // '') eq $id);
    }, 5);
    return $m ? $m->{json} : undef;
}

subtest 'while the SDK is still down: TARGET_UNAVAILABLE at once' => sub {
    my $id = uuid4();
    my $t0 = now_ms();
    $p->send_json(action($id));
    my $a = answer($id);
    is($a && $a->{payload}{code}, 'TARGET_UNAVAILABLE', 'TARGET_UNAVAILABLE');
    cmp_ok(now_ms() - $t0, '<', 1000, 'without waiting for the ack timeout');
};

subtest 'once the SDK is up, the next action connects and runs' => sub {
    my $sdk = fake_sdk(port => $port, target_id => 'kick-a',
        heartbeat_interval => 0);
    my $id = uuid4();
    my $t0 = now_ms();
    $p->send_json(action($id));
    my $a = answer($id);
    is($a && $a->{type}, 'action_ack', 'the SDK acked');
    my $ms = now_ms() - $t0;
    cmp_ok($ms, '<', 2000, "long before the backoff delay ends (${ms} ms)");
    is($sdk->executed($id), 1, 'executed once');
    $sdk->stop;
};

done_testing();
