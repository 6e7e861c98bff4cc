# A panel cannot pile up unanswered actions: with amonitor_send_queue N,
# an action beyond N waiting for their acks gets RATE_LIMITED (and is not
# forwarded nor claimed); once acks come back, actions are accepted again.
# Over the limit a repeated msg_id still gets its duplicate ack; actions
# past ACK_TIMEOUT no longer count.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use JSON::PP ();

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'rl-a',
    heartbeat_interval => 0, no_ack => 1);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amonitor 1m;
    amonitor_target rl-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 16;
    amonitor_ack_timeout 3s;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1), 'the agent dialed the SDK');

my $p = $t->panel('/ws/panel');

sub action {
    return { msg_id => $_[0], type => 'action', target_id => 'rl-a',
        payload => { action => 'restart' } };
}

my @ids = map { "rl-$_-" . uuid4() } 1 .. 16;
$p->send_json(action($_)) for @ids;
ok($sdk->wait_actions(16, 5), 'sixteen actions reach the SDK (no acks yet)');

my $over = "rl-17-" . uuid4();
$p->send_json(action($over));
my $m = $p->recv_until(sub {
    ($_[0]{json}{msg_id} // '') eq $over }, 2);
is($m && $m->{json}{type}, 'error', 'the seventeenth is answered at once');
is($m && $m->{json}{payload}{code}, 'RATE_LIMITED', 'with RATE_LIMITED');
sleep_loop(0.2);
is($sdk->executed($over), 0, 'and not forwarded');

# the SDK acks the first one: room for one more, and the refused msg_id
# was not claimed, so it can be sent again
$sdk->send_all({ msg_id => uuid4(), type => 'action_ack',
    target_id => 'rl-a', payload => { action_msg_id => $ids[0],
        success => JSON::PP::true(), message => 'ok' } });
ok($p->recv_type('action_ack', action_msg_id => $ids[0]),
    'the first action is acked');
$p->send_json(action($over));
ok(wait_for(sub { $sdk->executed($over) == 1 }, 3),
    'the refused msg_id is accepted now');

# sixteen wait again: a repeated msg_id still gets its duplicate answer,
# a new one RATE_LIMITED
$p->send_json(action($ids[1]));
$m = $p->recv_until(sub { ($_[0]{json}{payload}{action_msg_id} // '') eq
    $ids[1] || ($_[0]{json}{msg_id} // '') eq $ids[1] }, 2);
is($m && $m->{json}{type}, 'action_ack',
    'over the limit, a repeated msg_id gets its duplicate ack');
is($m && $m->{json}{payload}{state}, 'pending', 'state pending');
is($sdk->executed($ids[1]), 1, 'and is not forwarded again');
my $new = "rl-new-" . uuid4();
$p->send_json(action($new));
$m = $p->recv_until(sub { ($_[0]{json}{msg_id} // '') eq $new }, 2);
is($m && $m->{json}{payload}{code}, 'RATE_LIMITED', 'a new one: RATE_LIMITED');

# after ACK_TIMEOUT (final:false) they no longer count
ok(wait_for(sub { (grep { ($_->{json}{payload}{code} // '') eq 'ACK_TIMEOUT'
    } $p->messages) >= 16 }, 6), 'the sixteen got ACK_TIMEOUT');
ok(!grep({ ($_->{json}{payload}{code} // '') eq 'ACK_TIMEOUT'
    && $_->{json}{payload}{final} } $p->messages),
    'not final: they are in the late window');
$p->send_json(action($new));
ok(wait_for(sub { $sdk->executed($new) == 1 }, 3),
    'actions in the late window do not count: a new one is accepted');

done_testing();
