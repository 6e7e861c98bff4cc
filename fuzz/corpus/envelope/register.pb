
pb-r1trregister"demo-target-a(€ìûí«32
t	ws://h:1/
v1