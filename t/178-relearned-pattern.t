# A learned target that is forgotten and learned again under the same id:
# a panel subscribed by a pattern that matches it gets each heartbeat of
# the new target once (its link to the old target went with it).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $sdk = fake_sdk(port => $t->port(1), target_id => 'pat-1',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_reconnect 100ms 200ms;
    amonitor_learned_expire 2s;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

my $url = 'ws://127.0.0.1:' . $t->port(1) . '/';
my $p = $t->panel('/ws/panel?targets=pat-*', name => 'pattern');
my $q = $t->panel('/ws/panel', name => 'dialer');

sub dial {
    my $id = uuid4();
    $q->send_json({ msg_id => $id, type => 'action', timestamp => now_ms(),
        target_id => 'pat-1',
        payload => { action => 'restart', target_url => $url } });
    my $a = $q->recv_type('action_ack', action_msg_id => $id, timeout => 5);
    return $a;
}

# the heartbeats of pat-1 the pattern panel received, by msg_id
sub beats {
    my %n;
    for my $m ($p->messages) {
        my $j = $m->{json};
        $n{ $j->{msg_id} }++ if ref $j eq 'HASH'
            && ($j->{type} // '') eq 'heartbeat'
            && ($j->{target_id} // '') eq 'pat-1';
    }
    return \%n;
}

ok(dial(), 'pat-1 is dialed on demand and acks');
$sdk->heartbeat;
ok(wait_for(sub { keys %{ beats() } >= 1 }, 5),
    'the pattern panel gets its heartbeat');

$sdk->stop;
ok(wait_error_log(qr/learned target "pat-1" .* forgotten/, 8),
    'pat-1 is forgotten once nobody has it open');

$sdk->start;
ok(dial(), 'pat-1 is dialed again and acks');
$sdk->heartbeat;
$sdk->heartbeat;
ok(wait_for(sub { keys %{ beats() } >= 3 }, 5),
    'the pattern panel gets the new heartbeats');
sleep_loop(0.5);
my $b = beats();
is(scalar(grep { $_ != 1 } values %$b), 0,
    'each heartbeat exactly once (' . join(',', values %$b) . ')');

$t->ignore_log(qr/\[error\].*(?:connect|closed)/);
$t->stop;
$sdk->stop;
done_testing;
