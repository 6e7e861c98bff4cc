# The worker's table of sent actions (by msg_id, for their acks) doubles
# while actions wait and is made smaller again once most are answered
# (src/ngx_http_amonitor_action_sent.c): a table grown in a burst and
# left sparse made every ack's lookup a cache miss.  3,000 actions wait
# for their acks (the table grows to 4096 slots), the SDK then acks them
# all: every ack reaches the panel once, the table shrinks back to 256
# slots on the way, and actions sent after that still find their acks.
# The table's size is read from the worker's debug log lines (nginx
# built --with-debug, as Debian's is).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use JSON::PP ();

my $N = 3000;

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'st-a',
    heartbeat_interval => 0, no_ack => 1);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amonitor 8m;
    amonitor_target st-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 4096;
    amonitor_ack_timeout 60s;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1), 'the agent dialed the SDK');

my $p = $t->panel('/ws/panel');

sub ack_all {
    my (@ids) = @_;
    $sdk->send_all({ msg_id => uuid4(), type => 'action_ack',
        target_id => 'st-a', payload => { action_msg_id => $_,
            success => JSON::PP::true(), message => 'ok' } }) for @ids;
}

# acks of these ids the panel got (it keeps every message it read); one
# pass over the messages: answers_to() per id would go over all 3,000
# messages for each of the 3,000 ids
sub acked {
    my (@ids) = @_;
    my %want = map { $_ => 1 } @ids;
    my %got;
    for my $m ($p->messages) {
        my $j = $m->{json} or next;
        next unless ($j->{type} // '') eq 'action_ack';
        my $id = $j->{payload}{action_msg_id} // '';
        $got{$id}++ if $want{$id};
    }
    return \%got;
}

sub sizes {
    return [ $t->read_error_log
        =~ /amonitor sent actions: \d+, table of (\d+) slots/g ];
}

my @ids = map { "st-$_-" . uuid4() } 1 .. $N;
$p->send_action($_, 'st-a') for @ids;
ok($sdk->wait_actions($N, 30), "$N actions reach the SDK (no acks yet)");

SKIP: {
    skip 'nginx without --with-debug: no debug log', 1
        unless $t->_has_debug;
    is_deeply(sizes(), [256, 512, 1024, 2048, 4096],
        'the table doubled while they waited: 256 up to 4096 slots')
        or diag(explain(sizes()));
}

ack_all(@ids);
ok(wait_for(sub { scalar(keys %{ acked(@ids) }) == $N }, 30),
    "all $N acks reached the panel");
my $got = acked(@ids);
is(scalar(grep { $_ != 1 } values %$got), 0, '... each once');

SKIP: {
    skip 'nginx without --with-debug: no debug log', 1
        unless $t->_has_debug;
    is_deeply(sizes(), [256, 512, 1024, 2048, 4096, 1024, 256],
        'answered, the table shrank by quarters back to 256 slots')
        or diag(explain(sizes()));
}

# after the shrinking, actions still find their acks
my @more = map { "st-more-$_-" . uuid4() } 1 .. 20;
$p->send_action($_, 'st-a') for @more;
ok($sdk->wait_actions($N + 20, 10), 'twenty more reach the SDK');
ack_all(reverse @more);
ok(wait_for(sub { scalar(keys %{ acked(@more) }) == 20 }, 10),
    'and their acks reach the panel, acked in the reverse order');

done_testing();
