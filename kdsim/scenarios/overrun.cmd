* The innocent driver (seed case 4): the solution, step by step
.lab
* Let the machine run until it stops
g
!analyze -v
* The pool entry of the bug check is its second argument: the page it lives in
!pool poi(nt!KiBugCheckData+8)
* Around the damaged header: DrvA's data runs on over it, 600 bytes from where DrvA's block starts
db poi(nt!KiBugCheckData+8)-10 L80
* Special pool on the suspect, and again
.verifier /flags 0x1 /driver DrvA.sys
.reboot
g
!analyze -v
.check DrvA
